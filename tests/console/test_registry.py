"""The administrators' registry page over HTTP: organisations, OAuth clients and console
users, each change the registry's use case and audited as the administrator's."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from exchange.audit.models import AuditRecord
from exchange.db import Database
from tests.conftest import Tokens
from tests.console.conftest import ConsoleUser, person
from tests.console.world import Month
from tests.factories import FrozenClock


def _changes(db: Database, by: str) -> list[str]:
    with db.transaction() as session:
        return [
            record.payload
            for record in session.scalars(
                select(AuditRecord).where(
                    AuditRecord.kind == "operator:registry-change", AuditRecord.agent_user == by
                )
            )
        ]


def test_only_an_administrator_sees_or_changes_the_registry(
    month: Month, app: Flask, clock: FrozenClock
) -> None:
    lead = person(app, clock, "ig.lead@la01")
    admin = person(app, clock, "admin@icb01")
    assert lead.get("/console/registry").status_code == 403
    assert "Organisations, clients and users" not in lead.get("/console/").get_data(as_text=True)
    page = admin.get("/console/registry")
    assert page.status_code == 200
    for shown in ("la01-case-system", "ig.lead@la01", "PRV01", "Register an organisation"):
        assert shown in admin.last_page
    refused = lead.post(
        "/console/registry/clients/la01-case-system/disable", {}, form_page="/console/sign-out"
    )
    assert refused.status_code == 403
    assert app.test_client().get("/console/registry").status_code == 302  # sign in first


def test_a_disabled_client_is_refused_at_once_and_enabled_again(
    month: Month, app: Flask, clock: FrozenClock, db: Database, tokens: Tokens
) -> None:
    admin = person(app, clock, "admin@icb01")
    headers = tokens.headers("la01-case-system")
    assert app.test_client().get("/fhir/Organization", headers=headers).status_code == 200
    done = admin.post(
        "/console/registry/clients/la01-case-system/disable", {}, form_page="/console/registry"
    )
    assert done.status_code == 302
    assert "client la01-case-system: updated (enabled)" in admin.get(
        done.headers["Location"]
    ).get_data(as_text=True)
    assert app.test_client().get("/fhir/Organization", headers=headers).status_code == 401
    assert tokens.request("la01-case-system").status_code == 401  # type: ignore[attr-defined]
    admin.post(
        "/console/registry/clients/la01-case-system/enable", {}, form_page="/console/registry"
    )
    assert tokens.request("la01-case-system").status_code == 200  # type: ignore[attr-defined]
    assert len([c for c in _changes(db, "admin@icb01") if "la01-case-system" in c]) == 2
    missing = admin.post(
        "/console/registry/clients/nobody/disable", {}, form_page="/console/registry"
    )
    assert missing.status_code == 404


def test_a_reset_authenticator_is_set_up_again_at_the_next_sign_in(
    month: Month, app: Flask, clock: FrozenClock, db: Database
) -> None:
    lead = person(app, clock, "ig.lead@la01")
    admin = person(app, clock, "admin@icb01")
    clock.advance(seconds=30)
    done = admin.post(
        "/console/registry/users/ig.lead@la01/reset-authenticator",
        {},
        form_page="/console/registry",
    )
    assert done.status_code == 302
    assert lead.get("/console/access-log").status_code == 302  # the session has ended
    again = ConsoleUser(app.test_client(), clock, lead.username, lead.secret)
    from tests.console.conftest import NEW_PASSWORDS

    response = again.post(
        "/console/login", {"username": lead.username, "password": NEW_PASSWORDS[lead.username]}
    )
    assert response.headers["Location"].startswith("/console/login/authenticator")
    assert [c for c in _changes(db, "admin@icb01") if "ig.lead@la01: updated (totp)" in c]


def test_a_disabled_user_cannot_sign_in_and_an_admin_cannot_disable_themselves(
    month: Month, app: Flask, clock: FrozenClock, db: Database
) -> None:
    lead = person(app, clock, "ig.lead@la01")
    admin = person(app, clock, "admin@icb01")
    done = admin.post(
        "/console/registry/users/ig.lead@la01/disable", {}, form_page="/console/registry"
    )
    assert done.status_code == 302
    assert lead.get("/console/access-log").status_code == 302
    own = admin.post(
        "/console/registry/users/admin@icb01/disable", {}, form_page="/console/registry"
    )
    assert own.status_code == 409
    assert "You cannot disable your own account" in admin.last_page
    assert admin.get("/console/registry").status_code == 200  # still signed in
    enabled = admin.post(
        "/console/registry/users/ig.lead@la01/enable", {}, form_page="/console/registry"
    )
    listing = admin.get(enabled.headers["Location"]).get_data(as_text=True)
    assert "user ig.lead@la01: updated (enabled)" in listing
    assert len([c for c in _changes(db, "admin@icb01") if "ig.lead@la01" in c]) == 2


def test_an_administrator_registers_an_organisation(
    month: Month, app: Flask, clock: FrozenClock, db: Database
) -> None:
    admin = person(app, clock, "admin@icb01")
    form = "/console/registry"
    bad = admin.post(
        "/console/registry/organisations", {"ods": "x y", "name": "", "role": "la"}, form_page=form
    )
    assert bad.status_code == 422
    made = admin.post(
        "/console/registry/organisations",
        {"ods": "prv77", "name": "Riverside <b>Trust</b>", "role": "provider"},
        form_page=form,
    )
    assert made.status_code == 302, admin.last_page
    listing = admin.get(made.headers["Location"]).get_data(as_text=True)
    assert "organisation PRV77: created" in listing
    assert "Riverside &lt;b&gt;Trust&lt;/b&gt;" in listing
    assert [c for c in _changes(db, "admin@icb01") if "PRV77" in c]
