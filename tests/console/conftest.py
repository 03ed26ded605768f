"""Console test helpers: a signed-in person over the Flask test client (forms posted with
their CSRF token, as a browser would), and the first sign-in done the way a person does it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from exchange.db import Database
from exchange.users.models import ConsoleUser as ConsoleUserRow
from exchange.users.totp import code_at
from tests.conftest import Tokens
from tests.console.world import Month, build
from tests.factories import FrozenClock
from tests.scenario import Scenario

EXAMPLE_PASSWORD = "change-me-at-first-login"
NEW_PASSWORDS = {
    "ig.lead@la01": "la01 IG lead's own passphrase",
    "dco@icb01": "icb01 DCO's own passphrase",
    "admin@icb01": "icb01 admin's own passphrase",
}
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
_SECRET = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')


def csrf_of(html: str) -> str:
    """The CSRF token of the (first) form on a page."""
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


@dataclass
class ConsoleUser:
    """One person at the console, through the Flask test client."""

    client: FlaskClient
    clock: FrozenClock
    username: str = ""
    secret: str = ""
    last_page: str = field(default="", repr=False)

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.client.get(path, **kwargs)
        self.last_page = response.get_data(as_text=True)
        return response

    def post(self, path: str, data: dict[str, str], *, form_page: str | None = None) -> Any:
        """POST `data` with the CSRF token of `form_page` (default: `path`)."""
        page = self.client.get(form_page or path).get_data(as_text=True)
        response = self.client.post(path, data={**data, "csrf_token": csrf_of(page)})
        self.last_page = response.get_data(as_text=True)
        return response

    def code(self) -> str:
        """The code the person's authenticator app shows now."""
        return code_at(self.secret, self.clock.now())

    def first_sign_in(self, username: str) -> None:
        """Password, new password, authenticator enrolment (the secret read off the page)."""
        self.username = username
        response = self.post("/console/login", {"username": username, "password": EXAMPLE_PASSWORD})
        assert response.status_code == 302, self.last_page
        assert response.headers["Location"].startswith("/console/login/new-password")
        new = NEW_PASSWORDS[username]
        response = self.post(
            "/console/login/new-password", {"new-password": new, "confirm-password": new}
        )
        assert response.headers["Location"].startswith("/console/login/authenticator")
        page = self.get("/console/login/authenticator").get_data(as_text=True)
        self.secret = _SECRET.search(page).group(1).replace(" ", "")  # type: ignore[union-attr]
        response = self.post("/console/login/authenticator", {"code": self.code()})
        assert response.status_code == 302, self.last_page
        self.clock.advance(seconds=30)  # the next code is a new one

    def sign_in(self) -> Any:
        """A later sign-in: password, then a code."""
        response = self.post(
            "/console/login", {"username": self.username, "password": NEW_PASSWORDS[self.username]}
        )
        assert response.headers["Location"].startswith("/console/login/code"), self.last_page
        response = self.post("/console/login/code", {"code": self.code()})
        self.clock.advance(seconds=30)
        return response


@pytest.fixture
def console_world(world: None, db: Database) -> None:
    """The test world, its console users as the bootstrap file leaves them: holding the
    example password, to be changed at first sign-in (the world stores it pre-hashed,
    which a bootstrap takes as a password already chosen)."""
    with db.transaction() as session:
        session.execute(update(ConsoleUserRow).values(must_change_password=True))


@pytest.fixture
def scenario(client: FlaskClient, tokens: Tokens) -> Scenario:
    return Scenario(client, tokens)


@pytest.fixture
def ig_lead(app: Any, console_world: None, tokens: Tokens, clock: FrozenClock) -> ConsoleUser:
    """LA01's IG lead, signed in (first sign-in done)."""
    person = ConsoleUser(app.test_client(), clock)
    person.first_sign_in("ig.lead@la01")
    return person


def person(app: Any, clock: FrozenClock, username: str) -> ConsoleUser:
    """Another person signed in (first sign-in done) on their own browser."""
    someone = ConsoleUser(app.test_client(), clock)
    someone.first_sign_in(username)
    return someone


@pytest.fixture
def month(scenario: Scenario, clock: FrozenClock, console_world: None) -> Month:
    """The console world's month of exchange (tests/console/world.py)."""
    return build(scenario, clock)
