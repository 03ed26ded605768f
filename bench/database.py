"""A scratch PostgreSQL schema for a benchmark run (EXCHANGE_BENCH_DATABASE_URL, default
the local test database), migrated, and dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url

from exchange import migrate
from exchange.db import make_engine

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def scratch_schema() -> Iterator[str]:
    """Yield the URL of a freshly migrated schema; drop it at the end."""
    base = os.environ.get("EXCHANGE_BENCH_DATABASE_URL", DEFAULT_URL)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    engine = make_engine(base)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = (
        make_url(base)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
