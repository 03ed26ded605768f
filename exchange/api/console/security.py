"""The console's HTTP security: the session cookie, who is signed in, CSRF tokens, role
checks, and the console Caller.

- The cookie holds a random token; the server keeps only its hash (`users.service`), so
  a sign-out or a disabled user ends the session at once on every worker. It is HttpOnly,
  SameSite=Strict, and Secure whenever the request or the public base URL is https (then
  named with the `__Host-` prefix, which browsers bind to the exact origin).
- Every POST carries a CSRF token: an HMAC, under the console secret, of the session token
  (or, before sign-in, of a random pre-session cookie: the login form is protected too).
- A missing or wrong token is refused with a 403 page and audited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Final, ParamSpec, TypeVar

from flask import current_app, g, redirect, request, url_for
from werkzeug import Response
from werkzeug.exceptions import Forbidden

from exchange.api.context import services
from exchange.caller import Caller
from exchange.users import service as users
from exchange.users.service import Identity, Stage

P = ParamSpec("P")
R = TypeVar("R")

_SECRET_KEY: Final = "exchange.console.secret"  # noqa: S105 - the extension key
CSRF_FIELD: Final = "csrf_token"


class CsrfRefused(Forbidden):
    """A POST without the right CSRF token."""

    description = "The form has expired or did not come from this console. Go back and try again."


class RoleRefused(Forbidden):
    """A signed-in person without the role a page needs."""

    description = "Your account does not have the role this page needs."


def _secure() -> bool:
    return request.is_secure or services().settings.public_base_url.startswith("https://")


def cookie_name(pre: bool = False) -> str:
    """The session (or pre-session) cookie's name: `__Host-` prefixed over https."""
    base = "console-pre" if pre else "console"
    return f"__Host-{base}" if _secure() else base


def set_cookie(response: Response, token: str, pre: bool = False) -> None:
    """Set the (pre-)session cookie: a browser-session cookie (the server ends it)."""
    response.set_cookie(
        cookie_name(pre),
        token,
        path="/",
        secure=_secure(),
        httponly=True,
        samesite="Strict",
    )


def clear_cookie(response: Response) -> None:
    """Remove the session cookie."""
    response.delete_cookie(
        cookie_name(), path="/", secure=_secure(), httponly=True, samesite="Strict"
    )


def _console_secret() -> bytes:
    secret: bytes | None = current_app.extensions.get(_SECRET_KEY)
    if secret is None:
        # Created (0600) by `exchange init`; read once per worker.
        secret = services().settings.console_secret_path.read_bytes().strip()
        current_app.extensions[_SECRET_KEY] = secret
    return secret


def session_token() -> str | None:
    """The session token the request carries."""
    return request.cookies.get(cookie_name()) or None


def pre_session_token() -> str:
    """The pre-session token (made for this response if the request had none)."""
    token = request.cookies.get(cookie_name(pre=True))
    if not token or len(token) > 100:
        token = g.get("console_new_pre") or secrets.token_urlsafe(32)
        g.console_new_pre = token
    return token


def csrf_token() -> str:
    """The CSRF token for forms on this page."""
    bound = session_token() if g.get("console_identity") is not None else None
    basis = f"session|{bound}" if bound else f"pre|{pre_session_token()}"
    return hmac.new(_console_secret(), basis.encode("utf-8"), hashlib.sha256).hexdigest()


def check_csrf() -> None:
    """Refuse a POST whose CSRF token is missing or wrong (compared in constant time)."""
    sent = request.form.get(CSRF_FIELD, "")
    if not sent or not hmac.compare_digest(sent, csrf_token()):
        raise CsrfRefused()


def load_identity() -> None:
    """Who is signed in (at any stage), from the session cookie; the idle clock restarts."""
    g.console_identity = None
    token = session_token()
    if token is None or len(token) > 100:
        return
    ctx = services()
    with ctx.database.transaction() as session:
        g.console_identity = users.current(session, token, ctx.clock.now())


def identity() -> Identity | None:
    """The person signed in for this request (any stage), or None."""
    found: Identity | None = g.get("console_identity")
    return found


def signed_in() -> Identity | None:
    """The person fully signed in (password and second factor), or None."""
    found = identity()
    return found if found is not None and found.stage == Stage.ACTIVE else None


def caller() -> Caller:
    """The use cases' Caller: the signed-in person's organisation, the person as actor."""
    person = signed_in()
    if person is None:
        raise RoleRefused()
    return Caller(
        organisation_id=person.organisation_id,
        organisation=person.organisation,
        role=person.organisation_role,
        break_glass_allowed=person.break_glass_allowed,
        actor=person.actor(request.remote_addr),
        request_id=g.get("request_id"),
    )


def requires(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    """A view for people signed in with one of `roles` (any role when none is named);
    others go to sign in (a safe `next` kept), or get 403."""

    def decorate(view: Callable[P, R]) -> Callable[P, R | Response]:
        @wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            person = signed_in()
            if person is None:
                target = request.full_path if request.method == "GET" else None
                return redirect(url_for("console.login", next=target))
            if roles and not set(roles) & set(person.roles):
                raise RoleRefused()
            return view(*args, **kwargs)

        guarded.console_roles = roles  # type: ignore[attr-defined]
        return guarded

    return decorate


def has_role(*roles: str) -> bool:
    """Whether the signed-in person has one of `roles` (for navigation and buttons)."""
    person = signed_in()
    return person is not None and bool(set(roles) & set(person.roles))


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    if (
        target
        and target.startswith("/console/")
        and not target.startswith("//")
        and "\\" not in target
        and "//" not in target
    ):
        return target
    return url_for("console.home")
