"""Database plumbing: the declarative base, column types, engine and transaction helpers.

Services never commit: they receive a `Session` and the boundary (an API view or a CLI
command) opens one transaction per use case with `Database.transaction()`, so a change and
its audit record always commit together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every table; constraint names are deterministic so migrations can name them."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: A 64-bit key on PostgreSQL; SQLite only auto-increments an `INTEGER PRIMARY KEY`.
BigIntKey = BigInteger().with_variant(Integer(), "sqlite")

#: JSON documents: JSONB on PostgreSQL (indexable), JSON text on SQLite.
JsonDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps.

    SQLite has no time zones; storing naive UTC there and converting at the edge keeps
    comparisons right on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the project's connection settings for SQLite or PostgreSQL."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # No pre-ping: it costs a round trip on every checkout (two per request). A connection
    # the server has closed (a restart) fails its first statement instead: SQLAlchemy sees
    # the disconnect and drops the whole pool, that one request answers 503 (nothing was
    # changed), and the next connects afresh.
    return create_engine(url, **kwargs)


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot take a write lock up front;
    # we issue BEGIN ourselves (see _sqlite_on_begin), as SQLAlchemy's SQLite docs advise.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock at BEGIN: two writers queue on busy_timeout instead of
    # deadlocking on a read-to-write upgrade. SQLite is the single-host embedded default,
    # where serialised writes are the honest model anyway. A look-up (`Database.lookup`)
    # begins a deferred read transaction instead: it takes no write lock, so token checks
    # never queue behind writers (WAL readers see the last commit).
    lookup = connection.get_execution_options().get(LOOKUP_OPTION, False)
    connection.exec_driver_sql("BEGIN" if lookup else "BEGIN IMMEDIATE")


#: The execution option marking a SQLite look-up connection (`Database.lookup`).
LOOKUP_OPTION = "exchange_lookup"


class Database:
    """An engine and its session factory; one per process, shared by every request."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions: sessionmaker[Session] = sessionmaker(
            bind=self.engine, expire_on_commit=False
        )
        lookup_options: dict[str, Any] = (
            {LOOKUP_OPTION: True} if self.dialect == "sqlite" else {"isolation_level": "AUTOCOMMIT"}
        )
        self.lookups: sessionmaker[Session] = sessionmaker(
            bind=self.engine.execution_options(**lookup_options), expire_on_commit=False
        )

    @classmethod
    def bound_to(cls, connection: Connection) -> Database:
        """A Database whose transactions are savepoints inside `connection`'s transaction.

        For tests: everything a test does is rolled back with the outer transaction.
        """
        database = cls.__new__(cls)
        database.url = connection.engine.url.render_as_string(hide_password=False)
        database.engine = connection.engine
        database.sessions = sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        database.lookups = database.sessions
        return database

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits when the block ends, rolls back if it raises."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def lookup(self) -> Iterator[Session]:
        """A read that changes nothing and needs no snapshot across statements (the bearer
        token on every request): on PostgreSQL each statement runs on its own in autocommit
        (no BEGIN/COMMIT round trips), on SQLite in a read transaction that takes no write
        lock. It must not write: pending changes raise instead of committing."""
        with self.lookups() as session:
            yield session
            if session.new or session.dirty or session.deleted:
                raise RuntimeError("a look-up session does not write")

    def dispose(self) -> None:
        """Close every pooled connection (after a fork, or at shutdown)."""
        self.engine.dispose()
