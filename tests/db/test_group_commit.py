"""`db.GroupCommit`: appends from several threads of a process commit in one SQLite
transaction when they arrive while another commit is under way; each returns only once
its row has committed, a lone append is not delayed, and a failing append fails alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from exchange.db import Database


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[Database]:
    """A SQLite file (with its writer lock) holding one table of unique notes."""
    database = Database(f"sqlite:///{tmp_path / 'notes.db'}")
    with database.write_connection() as connection:
        connection.execute(text("CREATE TABLE note (value TEXT NOT NULL UNIQUE)"))
    yield database
    database.dispose()


def _commits(database: Database) -> list[int]:
    commits: list[int] = []
    event.listen(database.engine, "commit", lambda _connection: commits.append(1))
    return commits


def _note(value: str) -> Callable[[Connection], object]:
    return lambda connection: connection.execute(
        text("INSERT INTO note (value) VALUES (:value)"), {"value": value}
    )


def _stored(database: Database) -> set[str]:
    with database.lookup() as connection:
        return {row.value for row in connection.execute(text("SELECT value FROM note"))}


class _Appender(threading.Thread):
    """A thread making one append; what it raised, and whether its row was committed
    when the append returned (read on a connection of its own)."""

    def __init__(self, database: Database, write: Callable[[Connection], object], value: str):
        super().__init__(daemon=True)
        self.database, self.write, self.value = database, write, value
        self.error: BaseException | None = None
        self.committed_on_return = False

    def run(self) -> None:
        try:
            self.database.appends.run(self.write)
        except BaseException as error:  # noqa: BLE001 - the test reads it
            self.error = error
            return
        self.committed_on_return = self.value in _stored(self.database)


def _blocked_leader(database: Database) -> tuple[_Appender, threading.Event]:
    """A first append whose commit is held open (inside its transaction) until released."""
    entered, release = threading.Event(), threading.Event()

    def write(connection: Connection) -> None:
        _note("a")(connection)
        entered.set()
        assert release.wait(30)

    leader = _Appender(database, write, "a")
    leader.start()
    assert entered.wait(30)
    return leader, release


def _wait_for_joiners(database: Database, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = database.appends._open
        if batch is not None and len(batch.writes) == count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{count} appends did not join the next batch")


def test_a_lone_append_commits_at_once_in_a_transaction_of_its_own(notes: Database) -> None:
    commits = _commits(notes)
    appender = _Appender(notes, _note("alone"), "alone")
    appender.start()
    appender.join(30)
    assert appender.error is None and appender.committed_on_return
    assert len(commits) == 1


def test_appends_made_during_a_commit_share_the_next_one(notes: Database) -> None:
    commits = _commits(notes)
    leader, release = _blocked_leader(notes)
    followers = [_Appender(notes, _note(value), value) for value in "bcd"]
    for follower in followers:
        follower.start()
    _wait_for_joiners(notes, 3)
    assert _stored(notes) == set()  # nothing has committed while the first commit is held
    release.set()
    for appender in (leader, *followers):
        appender.join(30)
        assert appender.error is None
        assert appender.committed_on_return
    assert _stored(notes) == {"a", "b", "c", "d"}
    assert len(commits) == 2  # the leader's, then the three followers' together


def test_a_failing_append_fails_alone_and_the_others_commit(notes: Database) -> None:
    commits = _commits(notes)
    leader, release = _blocked_leader(notes)
    duplicate = _Appender(notes, _note("a"), "a")  # "a" is the leader's: UNIQUE refuses it
    others = [_Appender(notes, _note(value), value) for value in "cd"]
    for appender in (duplicate, *others):
        appender.start()
    _wait_for_joiners(notes, 3)
    release.set()
    for appender in (leader, duplicate, *others):
        appender.join(30)
    assert isinstance(duplicate.error, IntegrityError)
    assert all(o.error is None and o.committed_on_return for o in others)
    assert _stored(notes) == {"a", "c", "d"}
    # The leader's; the batch of three rolled back; then "c" and "d" each alone.
    assert len(commits) == 3


def test_an_append_inside_a_write_transaction_is_refused_at_once(notes: Database) -> None:
    started = time.monotonic()
    with notes.transaction(), pytest.raises(RuntimeError, match="wait on itself"):
        notes.appends.run(_note("inside"))
    assert time.monotonic() - started < 5
    assert _stored(notes) == set()


def test_appends_one_after_another_each_commit_on_either_database(database: Database) -> None:
    """On PostgreSQL (no writer lock) each append is its own transaction; on SQLite each
    of these leads a batch of one."""
    commits = _commits(database)
    table = f"note_{threading.get_ident()}"
    with database.write_connection() as connection:
        connection.execute(text(f"CREATE TABLE {table} (value TEXT NOT NULL)"))
    commits.clear()
    try:
        for value in ("one", "two"):
            database.appends.run(
                lambda connection, value=value: connection.execute(
                    text(f"INSERT INTO {table} (value) VALUES (:value)"), {"value": value}
                )
            )
        with database.lookup() as connection:
            assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 2
        assert len(commits) == 2
    finally:
        with database.write_connection() as connection:
            connection.execute(text(f"DROP TABLE {table}"))
