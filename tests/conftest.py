"""Shared fixtures: every database test runs on SQLite and, when EXCHANGE_TEST_DATABASE_URL
is set, on PostgreSQL; each test runs inside a transaction that is rolled back.

- `db`: a Database whose transactions are savepoints in a per-test outer transaction.
- `fresh_database_url`: a newly migrated database (SQLite file or PostgreSQL schema) for
  tests that need real commits seen by other processes (CLI, gunicorn, concurrency).
- `app` / `client`: the real Flask app on `db`, with a frozen clock.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from exchange import migrate
from exchange.app import create_app
from exchange.db import Database, make_engine
from exchange.install import prepare_data_directory
from exchange.settings import Settings
from tests.factories import FrozenClock

PG_URL = os.environ.get("EXCHANGE_TEST_DATABASE_URL")


def pytest_configure(config: pytest.Config) -> None:
    """CI must never skip PostgreSQL silently."""
    if os.environ.get("CI") == "true" and not PG_URL:
        raise pytest.UsageError(
            "CI=true but EXCHANGE_TEST_DATABASE_URL is not set: PostgreSQL tests would be skipped"
        )


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[] if PG_URL else [pytest.mark.skip(reason="EXCHANGE_TEST_DATABASE_URL is not set")],
    ),
]


class DatabaseFactory:
    """Creates migrated databases (SQLite files, or PostgreSQL schemas) and drops them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.schemas: list[str] = []

    def create(self, backend: str, *, migrated: bool = True) -> str:
        """A new empty (or migrated) database URL."""
        if backend == "sqlite":
            url = f"sqlite:///{self.directory / f'{uuid.uuid4().hex}.db'}"
        else:
            assert PG_URL is not None
            schema = f"test_{uuid.uuid4().hex[:16]}"
            engine = make_engine(PG_URL)
            with engine.begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            engine.dispose()
            self.schemas.append(schema)
            url = (
                make_url(PG_URL)
                .update_query_dict({"options": f"-csearch_path={schema}"})
                .render_as_string(hide_password=False)
            )
        if migrated:
            migrate.upgrade(url)
        return url

    def drop_all(self) -> None:
        """Drop every PostgreSQL schema this factory made (SQLite files go with tmp), each
        in a transaction of its own: dropping a schema locks every table, index and
        sequence in it until the transaction ends, and a session's thirty schemas in one
        transaction outgrew the server's shared lock table (64 locks a connection by
        default: "out of shared memory" at the end of a CI run, leaving the schemas)."""
        if not self.schemas or PG_URL is None:
            return
        engine = make_engine(PG_URL)
        try:
            for schema in self.schemas:
                with engine.begin() as connection:
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"))
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend under test: `sqlite` or `postgresql`."""
    return str(request.param)


@pytest.fixture(scope="session")
def session_database(backend: str, database_factory: DatabaseFactory) -> Iterator[Database]:
    """One migrated database per backend per test session."""
    database = Database(database_factory.create(backend))
    yield database
    database.dispose()


@pytest.fixture
def db(session_database: Database) -> Iterator[Database]:
    """The session database inside a transaction rolled back after the test."""
    with session_database.engine.connect() as connection:
        outer = connection.begin()
        yield Database.bound_to(connection)
        outer.rollback()


@pytest.fixture
def fresh_database_url(backend: str, database_factory: DatabaseFactory) -> str:
    """A new migrated database of the current backend, committed to for real."""
    return database_factory.create(backend)


@pytest.fixture
def database(fresh_database_url: str) -> Iterator[Database]:
    """A `Database` on `fresh_database_url` (a SQLite file has its writer lock), disposed
    after the test."""
    database = Database(fresh_database_url)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings(tmp_path: Path, db: Database, clock: FrozenClock) -> Settings:
    settings = Settings(data_dir=tmp_path / "var", database_url=db.url, log_format="json")
    prepare_data_directory(settings, clock)
    return settings


@pytest.fixture
def app(settings: Settings, db: Database, clock: FrozenClock) -> Flask:
    return create_app(settings, clock=clock, database=db)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# --- OAuth world: two LAs, a provider and an ICB, clients with real keys --------------

from exchange.audit.events import Actor  # noqa: E402
from exchange.registry.service import apply_bootstrap  # noqa: E402
from exchange.registry.specs import parse_bootstrap  # noqa: E402
from tests.factories import example_bootstrap  # noqa: E402
from tests.oauth import (  # noqa: E402
    ALGORITHMS,
    TestClient,
    claims_for,
    public_jwks,
    sign,
    signing_key,
    token_form,
)

TOKEN_URL = "http://127.0.0.1:8000/oauth2/token"
ALL_SCOPES = ["system/*.cruds"]


#: argon2id of the example users' password ("change-me-at-first-login"), made once: hashing
#: it for every test's world cost most of a second.
EXAMPLE_PASSWORD_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$5ylYI+fESAal+F4KyaQKGg"
    "$4kRYcZVHNug9KY4JbF2s4ba1cMCm4wObG0xVz6BM2vs"
)


def world_document() -> dict[str, object]:
    """The example bootstrap plus a second LA (LA02) with its own IG client, every client
    keyed with test keys (la01-case-system with one key per algorithm), and the users'
    password as its pre-computed hash."""
    document = example_bootstrap()
    for user in document["users"]:
        if user.pop("password", None) == "change-me-at-first-login":
            user["password_hash"] = EXAMPLE_PASSWORD_HASH
    document["organisations"].append({"ods": "LA02", "name": "Other Borough Council", "role": "la"})
    # LA03 is registered but party to no agreement: it may not register children (access.md).
    document["organisations"].append(
        {"ods": "LA03", "name": "Unagreed Borough Council", "role": "la"}
    )
    document["agreements"][0]["parties"].append("LA02")
    clients = {c["client_id"]: c for c in document["clients"]}
    clients["la01-case-system"]["jwks"] = public_jwks(*(signing_key(alg) for alg in ALGORITHMS))
    for client_id in ("prv01-epr", "la01-ig"):
        clients[client_id]["jwks"] = public_jwks(signing_key("ES256", client_id))
    clients["icb01-dco"].pop("jwks_uri")
    clients["icb01-dco"]["jwks"] = public_jwks(signing_key("ES256", "icb01-dco"))
    document["clients"] += [
        {
            "client_id": "la02-ig",
            "organisation": "LA02",
            "scopes": ["system/AuditEvent.rs"],
            "jwks": public_jwks(signing_key("ES256", "la02-ig")),
        },
        {
            "client_id": "la02-case-system",
            "organisation": "LA02",
            "scopes": ALL_SCOPES,
            "jwks": public_jwks(signing_key("ES256", "la02-case-system")),
        },
        {
            "client_id": "prv01-ig",
            "organisation": "PRV01",
            "scopes": ["system/AuditEvent.rs"],
            "jwks": public_jwks(signing_key("ES256", "prv01-ig")),
        },
        {
            "client_id": "la03-case-system",
            "organisation": "LA03",
            "scopes": ALL_SCOPES,
            "jwks": public_jwks(signing_key("ES256", "la03-case-system")),
        },
        {
            "client_id": "prv02-epr",
            "organisation": "PRV02",
            "scopes": ALL_SCOPES,
            "jwks": public_jwks(signing_key("ES256", "prv02-epr")),
        },
        {
            "client_id": "la01-everything",
            "organisation": "LA01",
            "scopes": ALL_SCOPES,
            "jwks": public_jwks(signing_key("ES256", "la01-everything")),
        },
        {
            "client_id": "la01-retired",
            "organisation": "LA01",
            "scopes": ALL_SCOPES,
            "enabled": False,
            "jwks": public_jwks(signing_key("ES256", "la01-retired")),
        },
    ]
    return document


def world_client(client_id: str) -> TestClient:
    """A world client with its signing key."""
    key = (
        signing_key("ES256") if client_id == "la01-case-system" else signing_key("ES256", client_id)
    )
    organisation = (
        client_id[:4].upper()
        if client_id.startswith(("la02", "la03"))
        else client_id[:5].upper().replace("-", "")
    )
    return TestClient(client_id, key, organisation)


@pytest.fixture
def world(db: Database, clock: FrozenClock) -> None:
    """The OAuth world registered in the test's database."""
    with db.transaction() as session:
        apply_bootstrap(session, parse_bootstrap(world_document()), clock, Actor.operator())


class Tokens:
    """Gets access tokens from the app's real token endpoint."""

    def __init__(self, client: FlaskClient, clock: FrozenClock) -> None:
        self.client = client
        self.clock = clock

    def request(self, client_id: str, scope: str | None = None, **claims: object) -> object:
        tc = world_client(client_id)
        assertion = sign(claims_for(client_id, TOKEN_URL, self.clock.now(), **claims), tc.key)
        return self.client.post("/oauth2/token", data=token_form(assertion, scope))

    def get(self, client_id: str, scope: str | None = None) -> str:
        response = self.request(client_id, scope)
        assert response.status_code == 200, response.get_json()  # type: ignore[attr-defined]
        return str(response.get_json()["access_token"])  # type: ignore[attr-defined]

    def headers(self, client_id: str, scope: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.get(client_id, scope)}"}


@pytest.fixture
def tokens(world: None, client: FlaskClient, clock: FrozenClock) -> Tokens:
    return Tokens(client, clock)
