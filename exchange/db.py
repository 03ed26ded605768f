"""Database plumbing: the declarative base, column types, engine and transaction helpers.

Services never commit: they receive a `Session` and the boundary (an API view or a CLI
command) opens one transaction per use case with `Database.transaction()`, so a change and
its audit record always commit together.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import InvalidRequestError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter, ClauseElement, _anonymous_label
from sqlalchemy.sql.visitors import replacement_traverse
from sqlalchemy.types import TypeDecorator

from exchange.files import file_lock

log = logging.getLogger("exchange.db")

#: The database failed (refused, lost or never reached): what the front doors answer as
#: "nothing was changed" (503 on the API and the console, one sentence on the CLI)
#: without naming the library that raised it.
DatabaseError = SQLAlchemyError
#: Of those, the database could not be reached (or was too busy to answer in time).
DatabaseUnreachable = OperationalError

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


_JSON_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def json_text(value: Any) -> str:
    """A JSON column's value as text: by orjson (compact UTF-8), at a fifth of `json`'s
    cost, where it was a tenth of a document create's statement (bench/profiles/api-load.md,
    "Sixth pass"); what orjson refuses (an integer beyond 64 bits, a key that is not a
    string) still goes through `json`, as does a date or dataclass, which `json` refuses.
    Either is parsed back to the same value."""
    try:
        return orjson.dumps(value, option=_JSON_OPTIONS).decode("utf-8")
    except TypeError:
        return json.dumps(value)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the project's connection settings for SQLite or PostgreSQL."""
    kwargs.setdefault("json_serializer", json_text)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    else:
        # No pre-ping: it costs a round trip on every checkout (two per request). A
        # connection the server has closed (a restart) fails its first statement instead:
        # SQLAlchemy sees the disconnect and drops the whole pool, that one request answers
        # 503 (nothing was changed), and the next connects afresh.
        engine = create_engine(url, **kwargs)
    event.listen(engine, "before_cursor_execute", _refuse_lookup_writes)
    return engine


#: A statement that changes rows (SQLAlchemy writes SQL keywords in capitals, names in
#: lower case; an upsert's DO UPDATE and a WITH clause's INSERT are found too).
_WRITES: Final = re.compile(r"\b(?:INSERT|UPDATE|DELETE)\b")


@functools.lru_cache(maxsize=1024)
def _writes(statement: str) -> bool:
    return _WRITES.search(statement) is not None


def _refuse_lookup_writes(connection: Connection, _cursor: Any, statement: str, *_: Any) -> None:
    """A look-up connection (`Database.lookup`, `read_session`) never writes: on
    PostgreSQL it is in autocommit, so a write would commit at once, outside any use
    case's transaction; on SQLite it is a read transaction rolled back at the end, so a
    write would be lost without a word. The ORM's flush is refused by the read session;
    this refuses a Core statement, `Prepared` included (it fires the same event), before it
    reaches the driver. `Database.appending` marks the one write allowed there."""
    if connection.get_execution_options().get(LOOKUP_OPTION) and _writes(statement):
        raise RuntimeError("a look-up connection does not write")


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


def _sqlite_on_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN: two writers queue on busy_timeout instead of
    # deadlocking on a read-to-write upgrade. SQLite is the single-host embedded default,
    # where serialised writes are the honest model anyway. A look-up (`Database.lookup`)
    # begins a deferred read transaction instead: it takes no write lock, so token checks
    # never queue behind writers (WAL readers see the last commit).
    lookup = connection.get_execution_options().get(LOOKUP_OPTION, False)
    statement = "BEGIN" if lookup else "BEGIN IMMEDIATE"
    # On the driver's cursor: SQLAlchemy's exec_driver_sql cost more than the BEGIN itself
    # (4% of a SQLite document read, which begins three transactions:
    # bench/profiles/api-load.md, "Fourth pass"). A failure (the database still locked
    # after busy_timeout) is SQLAlchemy's exception all the same.
    cursor = connection.connection.cursor()
    try:
        cursor.execute(statement)
    except connection.dialect.loaded_dbapi.Error as error:
        connection._handle_dbapi_exception(error, statement, None, cursor, None)
    finally:
        cursor.close()


#: The execution option marking a look-up connection (`Database.lookup`): on SQLite it
#: begins a read transaction; on either database it may not write.
LOOKUP_OPTION = "exchange_lookup"


@contextmanager
def appending(connection: Connection) -> Iterator[Connection]:
    """A look-up connection allowed the one write made there: an audited read's record on
    PostgreSQL, appended by one statement that commits itself (`audit.audited_read`).
    The option is changed on this connection only (not the pool's), for the block: a
    request's look-up connection is used again after the append (`holding_lookups`)."""
    before = connection.get_execution_options().get(LOOKUP_OPTION, False)
    connection.execution_options(**{LOOKUP_OPTION: False})
    try:
        yield connection
    finally:
        connection.execution_options(**{LOOKUP_OPTION: before})


@dataclass(slots=True)
class _Held:
    """The look-up connection one request holds (`Database.holding_lookups`), and how many
    look-ups and read sessions are using it now."""

    database: Database
    connection: Connection | None = None
    users: int = 0

    @contextmanager
    def used(self) -> Iterator[Connection]:
        """The connection (checked out at the first use) for one look-up or read session."""
        if self.connection is None:
            self.connection = self.database.lookups.connect()
        self.users += 1
        try:
            yield self.connection
        finally:
            self.users -= 1

    def give_back(self) -> None:
        """Return the connection to the pool unless a look-up is using it."""
        if self.connection is not None and self.users == 0:
            self.connection.close()
            self.connection = None


#: The held look-up connection of the request this context serves, if any.
_HELD: ContextVar[_Held | None] = ContextVar("exchange_held_lookup", default=None)


#: A job's advisory-lock key: by schema (so separate schemas, as test sessions use, do not
#: contend) and job name. `take_job_lock` and `Database.job` share it.
_JOB_KEY: Final = "hashtext(current_schema() || '/' || :name)"


def take_job_lock(session: Session, job: str) -> bool:
    """Make this transaction the only one doing `job` now; False if another process's
    holds it. PostgreSQL: a transaction-scoped advisory lock, keyed by schema (so
    separate schemas, as test sessions use, do not contend) and job (so one job, the
    sweep say, does not hold another up, the audit sealer). SQLite: every write
    transaction is BEGIN IMMEDIATE, which already excludes other writers."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    locked = session.execute(
        text(f"SELECT pg_try_advisory_xact_lock({_JOB_KEY})"),
        {"name": job},
    ).scalar_one()
    return bool(locked)


def among(session: Session, column: Any, values: list[Any]) -> ColumnElement[bool]:
    """`column IN (values)` for a long list: on PostgreSQL `column = ANY(:array)`, one
    parameter (an IN of 1,000 parameters was rendered, split by the driver and planned
    afresh at every call: three quarters of the sweep's checks, bench/operator_jobs.py);
    on SQLite, which runs in-process, an IN."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(
            ColumnElement[bool], column == any_(bindparam(None, values, type_=ARRAY(column.type)))
        )
    return cast(ColumnElement[bool], column.in_(values))


def core_connection(session: Session) -> Connection:
    """The connection of `session`'s transaction, for a prebuilt Core statement on a hot
    path: executing there skips the ORM's execution layer, a quarter to a third of a small
    statement's cost (bench/profiles/api-load.md). Pending ORM changes are flushed first,
    as `session.execute` would have (autoflush), so the statement sees them."""
    session.flush()
    return session.connection()


@dataclass(frozen=True, slots=True)
class _Plan:
    """A statement compiled for one dialect: its SQL, and how to bind and read it."""

    sql: str
    compiled: SQLCompiler
    #: Bind parameter name -> its type's bind processor (only those that have one).
    binds: dict[str, Callable[[Any], Any]]
    #: The driver's positional order of the parameters (None: it takes them by name).
    positions: tuple[str, ...] | None
    #: Each result column's processor (None: the driver's value as it is).
    results: tuple[Callable[[Any], Any] | None, ...]
    #: When every bind parameter is named as its key (or anonymous: a literal of the
    #: statement) and none is computed when run: the values of those that have one in the
    #: statement, and the names of those that must be given. None: SQLAlchemy's
    #: `construct_params` binds each execution.
    fixed: dict[str, Any] | None
    required: frozenset[str]

    @classmethod
    def of(cls, compiled: SQLCompiler, dialect: Dialect) -> _Plan:
        """The plan of a compiled statement."""
        binds: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                binds[name] = processor
        positions = tuple(compiled.positiontup or ()) if dialect.positional else None
        # What a SELECT selects or an INSERT returns.
        columns = getattr(compiled.statement, "exported_columns", ())
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        # An anonymous parameter (a literal in the statement) has a key no caller names.
        named = compiled.bind_names.items()
        fixed: dict[str, Any] | None = None
        required: frozenset[str] = frozenset()
        if all(
            (bind.key == name or isinstance(bind.key, _anonymous_label)) and not bind.callable
            for bind, name in named
        ):
            fixed = {name: bind.value for bind, name in named if not bind.required}
            required = frozenset(name for bind, name in named if bind.required)
        return cls(compiled.string, compiled, binds, positions, results, fixed, required)

    def bound(self, parameters: dict[str, Any]) -> Any:
        """The driver's parameters for one execution: processed, in its order.

        SQLAlchemy's `construct_params` walks every bind parameter in Python on each call
        (4.5% of a PostgreSQL document read's samples, bench/profiles/api-load.md, "Fifth
        pass"); for a statement whose parameters are named as their keys, the statement's
        own values overlaid with the given ones are the same dictionary. A name given that
        the statement does not hold is passed on unused, as the driver ignores it."""
        if self.fixed is None:
            values = dict(self.compiled.construct_params(parameters) or {})
        else:
            values = {**self.fixed, **parameters}
            if not self.required.issubset(values):
                missing = sorted(self.required.difference(values))[0]
                raise InvalidRequestError(
                    f"A value is required for bind parameter {missing!r}", code="cd3x"
                )
        for name, processor in self.binds.items():
            values[name] = processor(values[name])
        return values if self.positions is None else tuple(values[n] for n in self.positions)


class Prepared:
    """A statement run on every request, compiled once per dialect by SQLAlchemy and
    executed straight on the driver's cursor, with SQLAlchemy's own bind and result type
    processing, its exception classes and the engine's cursor events.

    SQLAlchemy's execution layer (the statement's cache key, the compiled cache, the
    execution context and result object) cost more than a small indexed statement itself:
    about 260 µs a statement against 160 µs for the driver's own round trip on this
    project's machines (bench/profiles/api-load.md, "Third pass"). A statement given here
    must not hold expanding (`IN` list) or literal-execute parameters: it is compiled once,
    not per execution (`Prepared` refuses one that does)."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        # Per engine's dialect, dropped with it (tests make many engines).
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan] = weakref.WeakKeyDictionary()

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect)
        if plan is None:
            plan = self._plans[dialect] = self._compile(dialect)
        return plan

    def _compile(self, dialect: Dialect) -> _Plan:
        compiled = self.statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError("only SQL statements can be Prepared")
        if "__[POSTCOMPILE_" in compiled.string:
            raise ValueError("a Prepared statement cannot hold IN lists or literal-execute values")
        if compiled.escaped_bind_names:
            raise ValueError("a Prepared statement's parameter names must need no escaping")
        return _Plan.of(compiled, dialect)

    def rows(self, connection: Connection, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement in `connection`'s transaction (begun first if it has none, as
        SQLAlchemy's own execution would); every row it returns."""
        return self._run(connection, [parameters], many=False)

    def many(self, connection: Connection, parameters: list[dict[str, Any]]) -> None:
        """Run the statement once for each set of `parameters`, as one `executemany` (an
        audit record's entity references on SQLite: SQLAlchemy's own executemany was a
        twentieth of a document read there, bench/profiles/api-load.md, "Fourth pass")."""
        if parameters:
            self._run(connection, parameters, many=True)

    def _run(
        self, connection: Connection, parameters: list[dict[str, Any]], *, many: bool
    ) -> list[tuple[Any, ...]]:
        plan = self._plan(connection.dialect)
        if not connection.in_transaction():
            connection.begin()
        dbapi = connection.connection
        cursor = dbapi.cursor()
        events = connection.dispatch
        bound: Any = None
        try:
            try:
                sets = [plan.bound(values) for values in parameters]
                bound = sets if many else sets[0]
            except BaseException as error:  # noqa: BLE001 - re-raised by SQLAlchemy
                connection._handle_dbapi_exception(error, plan.sql, bound, cursor, None)
            # The engine's cursor events see the statement (instrumentation, the look-up
            # guard, tests), and a listener's refusal is raised as it is; a listener's
            # returned changes (retval=True) are not applied.
            for listener in events.before_cursor_execute:
                listener(connection, cursor, plan.sql, bound, None, many)
            try:
                if many:
                    cursor.executemany(plan.sql, bound)
                else:
                    cursor.execute(plan.sql, bound)
                for listener in events.after_cursor_execute:
                    listener(connection, cursor, plan.sql, bound, None, many)
                found = cursor.fetchall() if not many and cursor.description is not None else []
            except BaseException as error:  # noqa: BLE001 - re-raised by SQLAlchemy, as its own
                # SQLAlchemy's own handling: its exception classes, the handle_error
                # events, and on a disconnect this connection and the rest of the pool
                # invalidated.
                connection._handle_dbapi_exception(error, plan.sql, bound, cursor, None)
        finally:
            cursor.close()
        if not any(plan.results):
            return [tuple(row) for row in found]
        return [
            tuple(
                value if processor is None else processor(value)
                for processor, value in zip(plan.results, row, strict=True)
            )
            for row in found
        ]

    def first(self, connection: Connection, parameters: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row the statement returns, or None."""
        found = self.rows(connection, parameters)
        return found[0] if found else None


def insert_of(model: type[Base], *, omit: tuple[str, ...] = ()) -> Insert:
    """An INSERT of one row of `model`'s table with a parameter for every column but
    `omit` (a key the database assigns), each named as its column."""
    table = cast(Table, model.__table__)
    return insert(table).values(
        {c.name: bindparam(c.name, type_=c.type) for c in table.columns if c.name not in omit}
    )


def row_insert(model: type[Base]) -> Prepared:
    """A `Prepared` INSERT of one row of `model`'s table, every column given (`values_of`)."""
    return Prepared(insert_of(model))


def values_of(row: Base) -> dict[str, Any]:
    """Every column of a mapped object (built, not added to a session) for `row_insert`;
    its attributes are named as its columns."""
    return {column.name: getattr(row, column.name) for column in row.__table__.columns}


def _refuse_writes(session: Session, _flush: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a read session does not write")


class WriterLock:
    """One SQLite write transaction at a time across this host's processes, queued in the
    kernel (`flock`) rather than by SQLite's busy handler, which sleeps and retries: under
    load its back-off left a few requests waiting hundreds of milliseconds while others
    went straight through (p99 over 40x the median: bench/profiles/api-load.md). Re-entrant
    within a thread; the lock file is opened afresh in each process (a descriptor inherited
    across a fork would share its lock)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._threads = threading.RLock()
        self._depth = 0
        self._owner: int | None = None
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block."""
        with self._threads:
            if self._depth == 0:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
                self._owner = threading.get_ident()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    fcntl.flock(self._descriptor(), fcntl.LOCK_UN)

    def held_here(self) -> bool:
        """Whether this thread holds the lock (only the holder sets or clears its name)."""
        return self._owner == threading.get_ident()

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd


#: A write that `GroupCommit` may commit together with other threads' writes.
Append = Callable[[Connection], object]


@dataclass(eq=False)
class _Batch:
    """The appends that will commit in one transaction, and what became of it."""

    writes: list[Append] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    committed: bool = False


class GroupCommit:
    """Appends from this process's threads committed together, in one SQLite write
    transaction: an audited read's records, the one write of a read, search or download.

    Each append on its own took the writer lock, began, inserted, committed with its
    fsync and dirtied a dozen pages of the WAL for one record, and the appends were
    half of an audited read's server CPU on SQLite (`bench/profiles/api-load.md`,
    "Seventh pass"). The first thread to append while no batch is open leads: it waits
    for the previous batch's commit and for the writer lock, closes its batch, and
    commits every append that joined meanwhile; the others wait until it has. Nothing is
    added to a lone append's latency (no timer): batches form only while another commit
    is under way.

    Each append still returns only after its own row has committed (durably: the commit's
    fsync, `synchronous=FULL`). If a batch of several fails, its transaction rolls back
    and each append runs again alone, in its own thread, so one bad append fails only its
    own request and raises its own error there. An append must therefore do nothing but
    write on the connection it is given. An append from inside a write transaction is
    refused (its batch would wait for the lock its own thread holds). Without a writer
    lock (PostgreSQL, whose appends commit as they come; a test's rolled-back
    connection), each append is its own transaction."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._pid = 0
        self._state = threading.Lock()
        self._open: _Batch | None = None

    def run(self, write: Append) -> None:
        """Commit `write`, with whatever other threads append meanwhile."""
        lock = self._database.writer_lock
        if lock is None:
            self._alone(write)
            return
        if lock.held_here():
            raise RuntimeError("an append inside a write transaction would wait on itself")
        batch, leads = self._join(write)
        if leads:
            self._commit(batch, lock)
        else:
            batch.done.wait()
        if not batch.committed:
            self._alone(write)

    def _alone(self, write: Append) -> None:
        with self._database.write_connection() as connection:
            write(connection)

    def _join(self, write: Append) -> tuple[_Batch, bool]:
        with self._state:
            if self._pid != os.getpid():
                # A forked worker starts with no batch of its own.
                self._pid, self._open = os.getpid(), None
            leads = self._open is None
            if leads:
                self._open = _Batch()
            batch = cast(_Batch, self._open)
            batch.writes.append(write)
            return batch, leads

    def _commit(self, batch: _Batch, lock: WriterLock) -> None:
        # The writer lock is also the turn among this process's leaders: its thread lock
        # queues them while one commits.
        try:
            with lock.held():
                with self._state:
                    if self._open is batch:
                        self._open = None
                try:
                    with self._database.write_connection() as connection:
                        for write in batch.writes:
                            write(connection)
                    batch.committed = True
                except Exception as error:
                    if len(batch.writes) == 1:
                        raise  # a lone append: its error is its own, raised here
                    log.warning(
                        "a group commit failed; its appends are tried alone",
                        extra={"appends": len(batch.writes), "error": type(error).__name__},
                    )
        finally:
            batch.done.set()


#: `Database.job`'s locks where there is no file to lock (in memory, or a test's connection).
_JOB_THREADS: dict[tuple[str, str], threading.Lock] = {}


def _writer_lock(url: str) -> WriterLock | None:
    """The writer lock beside a SQLite database file (None for PostgreSQL, whose row locks
    queue writers without polling, and for an in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return WriterLock(Path(f"{parsed.database}.writer-lock"))


class Database:
    """An engine and its session factory; one per process, shared by every request."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.writer_lock = _writer_lock(url)
        self.appends = GroupCommit(self)
        self.sessions: sessionmaker[Session] = sessionmaker(
            bind=self.engine, expire_on_commit=False
        )
        lookup_options: dict[str, Any] = {LOOKUP_OPTION: True}
        if self.dialect == "postgresql":
            lookup_options["isolation_level"] = "AUTOCOMMIT"
        self.lookups: Engine = self.engine.execution_options(**lookup_options)
        self.reads: sessionmaker[Session] = sessionmaker(bind=self.lookups, expire_on_commit=False)
        event.listen(self.reads, "before_flush", _refuse_writes)
        self._bound: Connection | None = None

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
        database.lookups = connection.engine
        database.reads = database.sessions
        database._bound = connection
        database.writer_lock = None
        database.appends = GroupCommit(database)
        return database

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits when the block ends, rolls back if it raises. On SQLite
        it first waits its turn for the writer lock (every transaction here may write)."""
        self._give_back_held()
        with self._turn(), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """`transaction` on a Core connection, with no ORM session: for an append that
        needs nothing else (an audited read's records; the session's own begin, commit and
        close were a third of that append on SQLite, bench/profiles/api-load.md)."""
        if self._bound is not None:
            with self._bound.begin_nested():
                yield self._bound
            return
        self._give_back_held()
        with self._turn(), self.engine.begin() as connection:
            yield connection

    def _turn(self) -> AbstractContextManager[object]:
        """A write's turn: the writer lock on SQLite, nothing to wait for otherwise."""
        return self.writer_lock.held() if self.writer_lock is not None else nullcontext()

    @contextmanager
    def job(self, name: str, *, wait: bool) -> Iterator[bool]:
        """Run the operator job `name` (the sweep, say) alone among every process on this
        database: True while this process holds it; False at once if another does and
        `wait` is false, else wait for it. Unlike `take_job_lock` it holds no transaction
        open, so the job can read in batches and write in short transactions of its own
        (on SQLite, holding the writer lock only for those). PostgreSQL: a session-level
        advisory lock on a look-up connection of its own (a connection that cannot give
        the lock back is closed, which releases it); SQLite: a file lock beside the
        database; in memory or bound to a test's connection: this process's threads."""
        if self._bound is None and self.dialect == "postgresql":
            with self._advisory_lock(name, wait=wait) as held:
                yield held
            return
        with self._job_file_lock(name, wait=wait) as held:
            yield held

    @contextmanager
    def _advisory_lock(self, name: str, *, wait: bool) -> Iterator[bool]:
        key = {"name": name}
        connection = self.lookups.connect()
        try:
            if wait:
                connection.execute(text(f"SELECT pg_advisory_lock({_JOB_KEY})"), key)
                held = True
            else:
                taken = connection.execute(text(f"SELECT pg_try_advisory_lock({_JOB_KEY})"), key)
                held = bool(taken.scalar_one())
            yield held
            if held:
                connection.execute(text(f"SELECT pg_advisory_unlock({_JOB_KEY})"), key)
        except BaseException:
            connection.invalidate()  # closed, not pooled: the server drops its locks
            raise
        finally:
            connection.close()

    @contextmanager
    def _job_file_lock(self, name: str, *, wait: bool) -> Iterator[bool]:
        parsed = make_url(self.url)
        if self._bound is not None or parsed.database in (None, "", ":memory:"):
            lock = _JOB_THREADS.setdefault((self.url, name), threading.Lock())
            if not lock.acquire(blocking=wait):
                yield False
                return
            try:
                yield True
            finally:
                lock.release()
            return
        with file_lock(Path(f"{parsed.database}.{name}.job-lock"), wait=wait) as held:
            yield held

    @contextmanager
    def holding_lookups(self) -> Iterator[None]:
        """Within the block (one API request), on PostgreSQL, every `lookup` and
        `read_session` shares one look-up connection, checked out at the first and given
        back at the end, or when a transaction begins while none is using it (so a request
        holds one connection at a time, as before, in the pool's size): a read took two
        checkouts (the bearer token, then the decision), each costing more than a
        statement (bench/profiles/api-load.md, "Fifth pass"). In autocommit nothing is
        held open on the server between statements. On SQLite, where a look-up is a read
        transaction, nothing changes: holding one would stretch its snapshot across the
        request."""
        if self._bound is not None or self.dialect != "postgresql":
            yield
            return
        held = _Held(self)
        token = _HELD.set(held)
        try:
            yield
        finally:
            _HELD.reset(token)
            if held.connection is not None:
                held.connection.close()

    def _holding(self) -> _Held | None:
        held = _HELD.get()
        return held if held is not None and held.database is self else None

    def _give_back_held(self) -> None:
        held = self._holding()
        if held is not None:
            held.give_back()

    @contextmanager
    def lookup(self) -> Iterator[Connection]:
        """A read that changes nothing and needs no snapshot across statements (the bearer
        token on every request), on a Core connection (no ORM session: it costs a third of
        the statement, bench/profiles/api-load.md): on PostgreSQL each statement runs on
        its own in autocommit (no BEGIN/COMMIT round trips), on SQLite in a read
        transaction that takes no write lock, rolled back at the end. It must not write."""
        if self._bound is not None:
            yield self._bound
            return
        held = self._holding()
        if held is not None:
            with held.used() as connection:
                yield connection
            return
        with self.lookups.connect() as connection:
            yield connection

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session that only reads, on the look-up connections (`lookup`): on SQLite a
        read transaction that takes no writer lock, rolled back at the end; on PostgreSQL
        autocommit. A flush with changes raises before anything is written. Bound to a
        test's connection, a savepoint that commits (into the test's rolled-back
        transaction) like any other."""
        if self._bound is not None:
            with self.reads() as session, session.begin():
                yield session
            return
        held = self._holding()
        if held is None:
            with self.reads() as session:
                yield session
            return
        with held.used() as connection, self.reads(bind=connection) as session:
            yield session

    def dispose(self) -> None:
        """Close every pooled connection (after a fork, or at shutdown)."""
        self.engine.dispose()


@dataclass(frozen=True, slots=True)
class Write:
    """One row a use case writes, for `write_together`: a `Prepared` INSERT (the last of
    the writes may hold a WITH clause of its own, as an audit record's does on
    PostgreSQL; two such would name theirs alike) and its values; `alone` runs it by itself
    where the writes cannot be one statement (SQLite), when that takes more than the
    statement (an audit record and its entity references there)."""

    statement: Prepared
    values: dict[str, Any]
    alone: Callable[[Connection], object] | None = None

    def run(self, connection: Connection) -> None:
        """Run this write by itself."""
        if self.alone is not None:
            self.alone(connection)
        else:
            self.statement.rows(connection, self.values)


def write_together(connection: Connection, writes: tuple[Write, ...]) -> None:
    """Run `writes` in `connection`'s transaction: on PostgreSQL as one statement (every
    write but the last in a WITH clause of the last), one round trip and one statement's
    work for the server; elsewhere each in turn.

    A document's create wrote five rows by five statements (its Binary, the document, its
    first version, the custodian's access and the audit record): their round trips and
    the driver's work per statement were a fifth of the create's server time
    (bench/profiles/api-load.md, "Sixth pass"). The rows go in as one statement: foreign
    keys between them are checked at its end, and no write may read what another wrote
    (a WITH clause's statements all see the snapshot the statement began with)."""
    if connection.dialect.name != "postgresql":
        for write in writes:
            write.run(connection)
        return
    together = _together(tuple(write.statement for write in writes))
    values: dict[str, Any] = {}
    for n, write in enumerate(writes):
        values.update({f"w{n}_{name}": value for name, value in write.values.items()})
    together.rows(connection, values)


@functools.lru_cache(maxsize=64)
def _together(statements: tuple[Prepared, ...]) -> Prepared:
    """The one statement running `statements` (`write_together`): each one's parameters
    renamed `w<n>_<name>` so that no two collide, every one but the last a WITH clause of
    the last."""
    renamed = [_with_prefix(s.statement, f"w{n}_") for n, s in enumerate(statements)]
    *first, last = renamed
    ctes = [cast(Insert, statement).cte(f"write_{n}") for n, statement in enumerate(first)]
    return Prepared(cast(Insert, last).add_cte(*ctes))


def _with_prefix(statement: ClauseElement, prefix: str) -> ClauseElement:
    """`statement` with each named bind parameter renamed `prefix + name` (a literal's
    anonymous parameter is left as it is)."""

    def renamed(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter) and not isinstance(element.key, _anonymous_label):
            return bindparam(
                prefix + element.key,
                value=element.value,
                type_=element.type,
                required=element.required,
                callable_=element.callable,
            )
        return None

    return cast(ClauseElement, replacement_traverse(statement, {}, renamed))
