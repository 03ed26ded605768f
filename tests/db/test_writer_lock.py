"""The SQLite writer lock (`db.WriterLock`): write transactions queue on it across
processes, it is re-entrant within a thread, and a Database on a SQLite file uses it."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
from pathlib import Path

from sqlalchemy import text

from exchange import migrate
from exchange.db import Database, WriterLock

ROUNDS = 150


def _held_elsewhere(path: Path) -> bool:
    """Whether another process holds the lock file (a non-blocking try from a fresh
    descriptor, as another process would)."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return False
    finally:
        os.close(descriptor)


def _probe(path: Path, answer: multiprocessing.SimpleQueue[bool]) -> None:
    answer.put(_held_elsewhere(path))


def _held_as_seen_by_another_process(path: Path) -> bool:
    context = multiprocessing.get_context("fork")
    answer: multiprocessing.SimpleQueue[bool] = context.SimpleQueue()
    process = context.Process(target=_probe, args=(path, answer))
    process.start()
    process.join(timeout=30)
    if process.exitcode != 0:
        raise RuntimeError(f"the probe failed (exit code {process.exitcode})")
    return answer.get()


def _count(lock_path: Path, counter: Path) -> None:
    lock = WriterLock(lock_path)
    for _ in range(ROUNDS):
        with lock.held():
            value = int(counter.read_text())
            counter.write_text(str(value + 1))


def test_processes_take_turns(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_count, args=(tmp_path / "lock", counter)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # Unlocked read-modify-write loses increments; under the lock none is lost.
    assert int(counter.read_text()) == 4 * ROUNDS


def test_reentrant_within_a_thread_and_released_by_the_outermost(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    lock = WriterLock(path)
    with lock.held():
        with lock.held():
            assert _held_as_seen_by_another_process(path)
        assert _held_as_seen_by_another_process(path)
    assert not _held_as_seen_by_another_process(path)


def test_threads_take_turns(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "lock")
    inside, overlaps = [0], []

    def work() -> None:
        for _ in range(ROUNDS):
            with lock.held():
                inside[0] += 1
                overlaps.append(inside[0])
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(overlaps) == 1 and len(overlaps) == 4 * ROUNDS


def test_a_sqlite_database_holds_it_for_each_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'exchange.db'}"
    migrate.upgrade(url)
    database = Database(url)
    lock_file = tmp_path / "exchange.db.writer-lock"
    try:
        with database.transaction() as session:
            session.execute(text("SELECT 1"))
            assert _held_as_seen_by_another_process(lock_file)
        assert not _held_as_seen_by_another_process(lock_file)
        # A look-up takes no write lock: it never queues behind a writer.
        with database.lookup() as connection:
            connection.execute(text("SELECT 1"))
            assert not _held_as_seen_by_another_process(lock_file)
    finally:
        database.dispose()
