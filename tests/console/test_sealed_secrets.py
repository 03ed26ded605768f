"""The console's TOTP secrets are stored sealed (`crypto.sealed`): a copy of the database
does not reveal them, a sealed secret moved to another person's row does not sign that
person in, a key service that is down refuses the step with nothing changed, and
`exchange keys rotate` re-wraps them."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import select

from exchange.audit.models import AuditRecord
from exchange.crypto.keys import KeyServiceUnavailable, LocalKeyProvider
from exchange.crypto.sealed import is_sealed, sealed_key_ref
from exchange.db import Database
from exchange.users.models import ConsoleSession
from exchange.users.models import ConsoleUser as ConsoleUserRow
from tests.console.conftest import EXAMPLE_PASSWORD, NEW_PASSWORDS, ConsoleUser, person
from tests.factories import FrozenClock

IG_LEAD, DCO = "ig.lead@la01", "dco@icb01"


def _secret_of(db: Database, username: str) -> str | None:
    with db.transaction() as session:
        return session.scalars(
            select(ConsoleUserRow.totp_secret).where(ConsoleUserRow.username == username)
        ).one()


def _set_secret(db: Database, username: str, stored: str) -> None:
    with db.transaction() as session:
        row = session.scalars(
            select(ConsoleUserRow).where(ConsoleUserRow.username == username)
        ).one()
        row.totp_secret = stored


def _failures(db: Database, username: str) -> int:
    with db.transaction() as session:
        return session.scalars(
            select(ConsoleUserRow.failed_logins).where(ConsoleUserRow.username == username)
        ).one()


def _kinds(db: Database, kind: str) -> list[AuditRecord]:
    with db.transaction() as session:
        return list(session.scalars(select(AuditRecord).where(AuditRecord.kind == kind)))


def _signed_in(response: Any) -> bool:
    return response.status_code == 302 and response.headers["Location"] == "/console/"


def _password(app: Any, someone: ConsoleUser) -> ConsoleUser:
    """A later sign-in's first step, from a new browser: the code page follows."""
    browser = ConsoleUser(app.test_client(), someone.clock, someone.username, someone.secret)
    response = browser.post(
        "/console/login",
        {"username": someone.username, "password": NEW_PASSWORDS[someone.username]},
    )
    assert response.headers["Location"].startswith("/console/login/code"), browser.last_page
    return browser


def _not_in(secret: str, stored: str) -> bool:
    return secret not in stored and base64.b32decode(secret) not in stored.encode()


def test_enrolment_keeps_the_secret_sealed_before_and_after_it_is_confirmed(
    app: Any, console_world: None, clock: FrozenClock, db: Database
) -> None:
    someone = ConsoleUser(app.test_client(), clock)
    someone.username = IG_LEAD
    someone.post("/console/login", {"username": IG_LEAD, "password": EXAMPLE_PASSWORD})
    new = NEW_PASSWORDS[IG_LEAD]
    someone.post("/console/login/new-password", {"new-password": new, "confirm-password": new})
    page = someone.get("/console/login/authenticator").get_data(as_text=True)
    shown = page.split('id="totp-secret">', 1)[1].split("<", 1)[0].replace(" ", "")
    with db.transaction() as session:
        (pending,) = session.scalars(
            select(ConsoleSession.pending_totp_secret).where(
                ConsoleSession.pending_totp_secret.is_not(None)
            )
        ).all()
    assert pending is not None and is_sealed(pending) and _not_in(shown, pending)
    # The page shown again offers the same secret (it is opened, not made anew).
    again = someone.get("/console/login/authenticator").get_data(as_text=True)
    assert shown in again.replace(" ", "")
    someone.secret = shown
    assert _signed_in(someone.post("/console/login/authenticator", {"code": someone.code()}))
    clock.advance(seconds=30)
    stored = _secret_of(db, IG_LEAD)
    assert stored is not None and is_sealed(stored) and _not_in(shown, stored)
    later = _password(app, someone)
    assert _signed_in(later.post("/console/login/code", {"code": later.code()}))


def test_a_secret_enrolled_before_sealing_still_signs_in_and_is_sealed_then(
    app: Any, console_world: None, clock: FrozenClock, db: Database
) -> None:
    someone = person(app, clock, IG_LEAD)
    clock.advance(seconds=30)
    _set_secret(db, IG_LEAD, someone.secret)  # as an older release stored it
    later = _password(app, someone)
    assert _signed_in(later.post("/console/login/code", {"code": later.code()}))
    stored = _secret_of(db, IG_LEAD)
    assert stored is not None and is_sealed(stored) and _not_in(someone.secret, stored)


def test_a_sealed_secret_copied_to_another_person_does_not_sign_them_in(
    app: Any, console_world: None, clock: FrozenClock, db: Database
) -> None:
    """Someone who can write the table copies their own sealed secret over a colleague's,
    then signs in as the colleague with a code from their own app: refused, counted."""
    attacker = person(app, clock, DCO)
    victim = person(app, clock, IG_LEAD)
    clock.advance(seconds=30)
    copied = _secret_of(db, DCO)
    assert copied is not None
    _set_secret(db, IG_LEAD, copied)
    victim = _password(app, victim)
    response = victim.post("/console/login/code", {"code": attacker.code()})
    assert response.status_code == 200 and not _signed_in(response)
    assert _failures(db, IG_LEAD) == 1
    (refused,) = [
        event
        for event in _kinds(db, "console:login-failed")
        if event.agent_user == IG_LEAD and "unreadable-secret" in event.payload
    ]
    assert refused is not None


def test_a_key_service_that_is_down_refuses_the_code_with_nothing_changed(
    app: Any,
    console_world: None,
    clock: FrozenClock,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    someone = person(app, clock, IG_LEAD)
    clock.advance(seconds=30)
    someone = _password(app, someone)

    def down(*_: object) -> bytes:
        raise KeyServiceUnavailable("the key service did not answer")

    with monkeypatch.context() as patched:  # the outage: a fault not otherwise causable here
        patched.setattr(LocalKeyProvider, "unwrap", down)
        response = someone.post("/console/login/code", {"code": someone.code()})
    assert response.status_code == 503
    assert "nothing was changed" in someone.last_page
    assert _failures(db, IG_LEAD) == 0
    # Back up: the same sign-in goes on with the same code.
    assert _signed_in(someone.post("/console/login/code", {"code": someone.code()}))


def test_a_key_rotation_rewraps_the_secrets_and_sign_in_goes_on(
    app: Any, console_world: None, clock: FrozenClock, db: Database, settings: Any
) -> None:
    """What `exchange keys rotate` does (its use case): a new KEK version in the keyring
    file, every sealed secret re-wrapped with it and one enrolled before sealing sealed
    now; the running console follows the new keyring."""
    from exchange.key_rotation import rotate_keys

    sealed_one = person(app, clock, IG_LEAD)
    plain_one = person(app, clock, DCO)
    clock.advance(seconds=30)
    _set_secret(db, DCO, plain_one.secret)  # as an older release stored it
    before = _secret_of(db, IG_LEAD)
    assert before is not None and sealed_key_ref(before) == "local:1"
    rotation = rotate_keys(db, settings.keyring_path, clock.now())
    assert rotation.kek_version == 2 and rotation.totp_secrets == 2
    for someone in (sealed_one, plain_one):
        stored = _secret_of(db, someone.username)
        assert stored is not None and sealed_key_ref(stored) == "local:2"
        assert _not_in(someone.secret, stored)
        later = _password(app, someone)
        assert _signed_in(later.post("/console/login/code", {"code": later.code()}))
    (rotation,) = _kinds(db, "operator:key-rotation")
    assert '"totp-secrets"' in rotation.payload and '"valueString":"2"' in rotation.payload
