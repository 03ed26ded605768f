"""Signing in to the console: first sign-in, second factor, lock-out, sessions, CSRF."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from exchange.audit.models import AuditRecord
from exchange.db import Database
from tests.console.conftest import ConsoleUser
from tests.factories import FrozenClock


def _kinds(db: Database, kind: str) -> list[AuditRecord]:
    with db.transaction() as session:
        return list(session.scalars(select(AuditRecord).where(AuditRecord.kind == kind)))


def test_first_sign_in_changes_the_password_and_enrols_totp(
    app: Any, console_world: None, clock: FrozenClock, db: Database
) -> None:
    person = ConsoleUser(app.test_client(), clock)
    person.first_sign_in("ig.lead@la01")
    home = person.get("/console/")
    assert home.status_code == 200
    assert "ig.lead@la01" in person.last_page
    logins = _kinds(db, "console:login")
    assert [event.agent_user for event in logins] == ["ig.lead@la01"]
