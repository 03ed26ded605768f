"""The registry, for administrators: organisations (and registering one), OAuth clients
(enable, disable) and console users (reset an authenticator, enable, disable). Every
change is the registry's use case, as `exchange organisation|client|user ...` makes it,
audited as the administrator's."""

from __future__ import annotations

from flask import redirect, request, url_for
from werkzeug import Response
from werkzeug.exceptions import NotFound as HttpNotFound

from exchange.api.console import security
from exchange.api.console.blueprint import bp
from exchange.api.console.pages import render
from exchange.api.context import services
from exchange.codes import OrganisationRole
from exchange.registry.service import (
    Change,
    RegistryError,
    RegistryRefused,
    list_clients,
    list_organisations,
    list_users,
    register_entry,
    reset_user_totp,
    set_client_enabled,
    set_user_enabled,
)
from exchange.registry.specs import BootstrapError

TITLE = "Organisations, clients and users"
ROLES = tuple(role.value for role in OrganisationRole)


def _page(
    errors: dict[str, str] | None = None, values: dict[str, str] | None = None, status: int = 200
) -> Response:
    ctx = services()
    with ctx.database.transaction() as session:
        organisations = [
            {"ods": o.ods, "name": o.name, "role": o.role} for o in list_organisations(session)
        ]
        clients = [
            {
                "client_id": c.client_id,
                "organisation": c.organisation.ods,
                "scopes": c.scopes,
                "enabled": c.enabled,
            }
            for c in list_clients(session)
        ]
        users = [
            {
                "username": u.username,
                "organisation": u.organisation.ods,
                "roles": u.roles,
                "enabled": u.enabled,
                "authenticator": u.totp_secret is not None,
            }
            for u in list_users(session)
        ]
    return render(
        "console/registry.jinja",
        TITLE,
        status=status,
        errors=errors,
        organisations=organisations,
        clients=clients,
        users=users,
        me=security.caller().actor.user,
        roles=ROLES,
        values=values or {},
        changed=request.args.get("changed", ""),
    )


def _done(change: Change | None, unchanged: str) -> Response:
    return redirect(url_for("console.registry", changed=str(change) if change else unchanged))


@bp.get("/registry")
@security.requires("admin")
def registry() -> Response:
    """Every organisation, client and console user."""
    return _page()


@bp.post("/registry/organisations")
@security.requires("admin")
def organisation_add() -> Response:
    """Register (or rename) an organisation, validated as a bootstrap file's entry."""
    values = {name: request.form.get(name, "").strip()[:256] for name in ("ods", "name", "role")}
    entry = {"ods": values["ods"].upper(), "name": values["name"], "role": values["role"]}
    ctx = services()
    try:
        with ctx.database.transaction() as session:
            changes = register_entry(
                session, "organisations", entry, ctx.clock, security.caller().actor
            )
    except BootstrapError as problem:
        errors = {f"ods|{n}": text for n, text in enumerate(problem.problems)}
        return _page(errors, values, status=422)
    changed = "; ".join(str(change) for change in changes) or "no changes"
    return redirect(url_for("console.registry", changed=changed))


@bp.post("/registry/clients/<client_id>/<any(enable, disable):action>")
@security.requires("admin")
def client_enable(client_id: str, action: str) -> Response:
    """Enable or disable an OAuth client: a disabled one is refused at once everywhere."""
    ctx = services()
    try:
        with ctx.database.transaction() as session:
            change = set_client_enabled(
                session, client_id[:128], action == "enable", ctx.clock, security.caller().actor
            )
    except RegistryError:
        raise HttpNotFound() from None
    return _done(change, f"client {client_id}: already {action}d")


@bp.post("/registry/users/<username>/<any(enable, disable):action>")
@security.requires("admin")
def user_enable(username: str, action: str) -> Response:
    """Enable or disable a console user (a disabled one's sessions end now)."""
    ctx = services()
    try:
        with ctx.database.transaction() as session:
            change = set_user_enabled(
                session, username[:256], action == "enable", ctx.clock, security.caller().actor
            )
    except RegistryRefused as refused:
        return _page({"users": str(refused).capitalize()}, status=409)
    except RegistryError:
        raise HttpNotFound() from None
    return _done(change, f"user {username}: already {action}d")


@bp.post("/registry/users/<username>/reset-authenticator")
@security.requires("admin")
def user_reset_totp(username: str) -> Response:
    """Forget a person's authenticator (a lost phone): they set up a new one at their next
    sign-in, and their sessions end now."""
    ctx = services()
    try:
        with ctx.database.transaction() as session:
            change = reset_user_totp(session, username[:256], ctx.clock, security.caller().actor)
    except RegistryError:
        raise HttpNotFound() from None
    return _done(change, "")
