"""A small generated national dataset on PostgreSQL (`bench.generate`), shared by the
performance tests of this package: enough rows that the planner's choices mean something,
few enough to load in seconds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from joserfc.jwk import ECKey

from bench.generate import generate, public_jwks
from exchange.app import create_app
from exchange.auth.client import ASSERTION_TYPE, client_assertion
from exchange.db import Database
from exchange.install import prepare_data_directory
from exchange.settings import Settings
from tests.conftest import PG_URL, DatabaseFactory
from tests.factories import FrozenClock

#: 2,000 children, about 5,000 advice requests and 9,000 documents; 50,000 AuditEvents.
SCALE = 0.001
AUDIT_SCALE = 0.0001
#: Where the generated history ends (the tests' frozen clock stands there).
UNTIL = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Generated:
    """A generated database and the key its clients are registered with."""

    url: str
    key: ECKey


@pytest.fixture(scope="module")
def generated(database_factory: DatabaseFactory) -> Generated:
    """The generated dataset in a fresh PostgreSQL schema (skipped without PostgreSQL)."""
    if not PG_URL:
        pytest.skip("EXCHANGE_TEST_DATABASE_URL is not set: the generator needs PostgreSQL")
    url = database_factory.create("postgresql")
    key = ECKey.generate_key("P-256", parameters={"kid": "perf", "alg": "ES256"})
    generate(url, SCALE, AUDIT_SCALE, jwks=public_jwks(key), until=UNTIL, say=lambda _: None)
    return Generated(url, key)


TOKEN_URL = "http://127.0.0.1:8000/oauth2/token"


@contextmanager
def served(generated: Generated, data_dir: Path) -> Iterator[tuple[FlaskClient, Database]]:
    """The real app over the generated database, its clock at `UNTIL`."""
    clock = FrozenClock(UNTIL)
    settings = Settings(data_dir=data_dir, database_url=generated.url, log_format="json")
    prepare_data_directory(settings, clock)
    database = Database(generated.url)
    try:
        yield create_app(settings, clock=clock, database=database).test_client(), database
    finally:
        database.dispose()


def bearer(client: FlaskClient, client_id: str, generated: Generated) -> dict[str, str]:
    """The Authorization header of a token for a generated client, from the token endpoint."""
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(client_id, generated.key, TOKEN_URL, issued=UNTIL),
    }
    response = client.post("/oauth2/token", data=form)
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}
