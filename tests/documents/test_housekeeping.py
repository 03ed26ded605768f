"""`exchange sweep` (orphans, expired uploads) and `exchange retention apply`."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from exchange.audit.events import AuditKind
from exchange.audit.models import AuditRecord
from exchange.crypto.keyring import Keyring
from exchange.crypto.keys import LocalKeyProvider
from exchange.db import Database
from exchange.documents import housekeeping
from exchange.documents.housekeeping import hourly_sweep, sweep
from exchange.documents.models import BinaryRow
from exchange.documents.pipeline import add_binary, open_content, seal_content
from exchange.storage.blobs import FileBlobStore, new_blob_name
from tests.cli_runner import exchange
from tests.factories import make_organisation, pdf_bytes

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _organisation(db: Database) -> object:
    return make_organisation(db, "PRV88")


def _upload(
    db: Database, store: FileBlobStore, keys: LocalKeyProvider, uploader: object, when: datetime
) -> BinaryRow:
    with db.transaction() as session:
        content = seal_content(store, keys, [pdf_bytes(500)], "application/pdf", 10**6)
        return add_binary(session, content, uploader, when)  # type: ignore[arg-type]


def test_sweep(db: Database, tmp_path: Path) -> None:
    store, keys = FileBlobStore(tmp_path / "blobs"), LocalKeyProvider(Keyring.generate(NOW))
    uploader = _organisation(db)
    attached = _upload(db, store, keys, uploader, NOW - timedelta(days=3))
    expired = _upload(db, store, keys, uploader, NOW - timedelta(hours=25))
    fresh = _upload(db, store, keys, uploader, NOW - timedelta(hours=1))
    with db.transaction() as session:
        session.get(BinaryRow, attached.id).document_id = attached.id  # type: ignore[union-attr]
    old_orphan, new_orphan = new_blob_name(), new_blob_name()
    store.write(old_orphan, [b"ciphertext"])
    store.write(new_orphan, [b"ciphertext"])
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / "blobs" / old_orphan[:2] / old_orphan, (two_hours_ago, two_hours_ago))
    result = sweep(db, store, NOW)
    assert (result.orphan_blobs, result.expired_uploads) == (1, 1)
    names = set(store.names())
    assert new_orphan in names and old_orphan not in names  # an in-flight upload's blob is spared
    assert expired.blob_name not in names
    with db.transaction() as session:
        shredded = session.get(BinaryRow, expired.id)
        assert shredded is not None and shredded.wrapped_key is None and shredded.destroyed == NOW
        kept = session.get(BinaryRow, fresh.id)
        assert kept is not None
        assert b"".join(open_content(kept, store, keys)).startswith(b"%PDF")
        (audited,) = session.scalars(
            select(AuditRecord).where(AuditRecord.kind == AuditKind.RETENTION.value)
        ).all()
    assert _who(audited).startswith("operator@")
    assert _details(audited) == {"job": "sweep", "orphan-blobs": "1", "expired-uploads": "1"}


def test_a_sweep_clears_what_a_killed_upload_left(db: Database, tmp_path: Path) -> None:
    """A temporary file no write has touched for the grace period (a process killed
    mid-upload left it) goes with the sweep, counted in its audit record and its
    answer; one still being written stays."""
    store = FileBlobStore(tmp_path / "blobs")
    incoming = tmp_path / "blobs" / ".incoming"
    incoming.mkdir(parents=True)
    stale, fresh = incoming / f".{new_blob_name()}.aa.tmp", incoming / f".{new_blob_name()}.bb.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"still arriving")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    result = sweep(db, store, NOW)
    assert (result.orphan_blobs, result.expired_uploads, result.abandoned_writes) == (0, 0, 1)
    assert not stale.exists() and fresh.exists()
    (audited,) = _retention_records(db)
    assert _details(audited) == {
        "job": "sweep",
        "orphan-blobs": "0",
        "expired-uploads": "0",
        "abandoned-writes": "1",
    }


def test_the_hourly_sweep_is_audited_only_when_it_removed_something(
    db: Database, tmp_path: Path
) -> None:
    store, keys = FileBlobStore(tmp_path / "blobs"), LocalKeyProvider(Keyring.generate(NOW))
    hourly_sweep(db, store, NOW)
    assert _retention_records(db) == []
    expired = _upload(db, store, keys, _organisation(db), NOW - timedelta(hours=25))
    hourly_sweep(db, store, NOW)
    (audited,) = _retention_records(db)
    assert _who(audited) == "exchange-sweeper"
    assert _details(audited) == {"job": "sweep", "orphan-blobs": "0", "expired-uploads": "1"}
    assert expired.blob_name not in set(store.names())


def test_a_sweep_that_fails_to_commit_deletes_no_content(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys' destruction and its audit record commit before any blob is deleted: a
    failure in between (here the audit insert, a fault not otherwise causable) leaves the
    rows and their bytes as they were."""

    store, keys = FileBlobStore(tmp_path / "blobs"), LocalKeyProvider(Keyring.generate(NOW))
    expired = _upload(db, store, keys, _organisation(db), NOW - timedelta(hours=25))

    def failing_record(*_: object, **__: object) -> None:
        raise RuntimeError("the audit insert failed")

    monkeypatch.setattr(housekeeping, "record", failing_record)
    with pytest.raises(RuntimeError):
        sweep(db, store, NOW)
    with db.transaction() as session:
        kept = session.get(BinaryRow, expired.id)
        assert kept is not None and kept.destroyed is None
        assert b"".join(open_content(kept, store, keys)).startswith(b"%PDF")


def test_a_shredded_blob_whose_delete_failed_goes_at_the_next_sweep(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store refuses the delete after the keys' destruction has committed (an S3
    outage, say: a fault not otherwise causable here). The ciphertext stays, opened by
    nobody, and the next sweep removes it once it is past the grace period."""
    store, keys = FileBlobStore(tmp_path / "blobs"), LocalKeyProvider(Keyring.generate(NOW))
    expired = _upload(db, store, keys, _organisation(db), NOW - timedelta(hours=25))

    def refused(*_: object) -> None:
        raise OSError("the store did not answer")

    with monkeypatch.context() as patched:
        patched.setattr(FileBlobStore, "delete", refused)
        first = sweep(db, store, NOW)
    assert (first.expired_uploads, first.left) == (1, 1)
    with db.transaction() as session:
        shredded = session.get(BinaryRow, expired.id)
        assert shredded is not None and shredded.wrapped_key is None
    assert expired.blob_name in set(store.names())
    two_hours_ago = time.time() - 7200
    name = expired.blob_name
    os.utime(tmp_path / "blobs" / name[:2] / name, (two_hours_ago, two_hours_ago))
    again = sweep(db, store, NOW + timedelta(hours=1))
    assert (again.orphan_blobs, again.expired_uploads) == (1, 0)
    assert name not in set(store.names())


def _retention_records(db: Database) -> list[AuditRecord]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditRecord).where(AuditRecord.kind == AuditKind.RETENTION.value)
            ).all()
        )


def _who(audited: AuditRecord) -> str:
    return str(json.loads(audited.payload)["agent"][0]["who"]["identifier"]["value"])


def _details(audited: AuditRecord) -> dict[str, str]:
    return {
        d["type"]: d["valueString"]
        for e in json.loads(audited.payload)["entity"]
        for d in e.get("detail", [])
    }


def test_retention_command(tmp_path: Path, fresh_database_url: str) -> None:
    data_dir = tmp_path / "var"
    assert exchange("init", data_dir=data_dir, database_url=fresh_database_url).returncode == 0
    dry = exchange(
        "retention",
        "apply",
        "--before",
        "2030-01-01",
        "--dry-run",
        data_dir=data_dir,
        database_url=fresh_database_url,
    )
    assert dry.returncode == 0, dry.stderr
    assert (
        dry.stdout.strip()
        == "would crypto-shred 0 document content(s) of 0 document(s) dated before 2030-01-01"
    )
    bad = exchange(
        "retention", "apply", "--before", "soon", data_dir=data_dir, database_url=fresh_database_url
    )
    assert bad.returncode == 1
    assert "is not a date" in bad.stderr


def test_a_sweep_checks_the_store_a_batch_at_a_time_and_stops_at_its_limit(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blob names are checked against the database a few at a time (two here), and one
    sweep removes at most its limit (three here): the rest go at the next. Live blobs,
    in whichever batch they fall, are kept."""

    monkeypatch.setattr(housekeeping, "BATCH", 2)
    monkeypatch.setattr(housekeeping, "SWEEP_LIMIT", 3)
    store, keys = FileBlobStore(tmp_path / "blobs"), LocalKeyProvider(Keyring.generate(NOW))
    uploader = _organisation(db)
    live = [_upload(db, store, keys, uploader, NOW - timedelta(hours=2)) for _ in range(3)]
    with db.transaction() as session:
        for row in live:
            session.get(BinaryRow, row.id).document_id = row.id  # type: ignore[union-attr]
    orphans = [new_blob_name() for _ in range(5)]
    two_hours_ago = time.time() - 7200
    for name in orphans + [row.blob_name for row in live]:
        if name in orphans:
            store.write(name, [b"ciphertext"])
        os.utime(tmp_path / "blobs" / name[:2] / name, (two_hours_ago, two_hours_ago))
    first = sweep(db, store, NOW)
    assert first.orphan_blobs == 3
    second = sweep(db, store, NOW)
    assert second.orphan_blobs == 2
    names = set(store.names())
    assert names == {row.blob_name for row in live}
    assert all(b"".join(open_content(row, store, keys)).startswith(b"%PDF") for row in live)


class _PausedListing(FileBlobStore):
    """The real file store, whose listing stops half-way until `go_on` is set (a store
    slow to list, as at national scale: its duration cannot be caused otherwise here)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.listing, self.go_on = threading.Event(), threading.Event()

    def names(self) -> Iterator[str]:
        for position, name in enumerate(super().names()):
            if position == 1:
                self.listing.set()
                assert self.go_on.wait(30)
            yield name


@pytest.mark.parametrize("job", [sweep, hourly_sweep])
def test_writers_are_not_held_up_while_a_sweep_lists_the_store(
    database: Database, tmp_path: Path, job: object
) -> None:
    """While a sweep lists the store (on a real database, SQLite's writer lock
    included), another transaction writes and commits; the sweep then finishes."""
    store = _PausedListing(tmp_path / "blobs")
    two_hours_ago = time.time() - 7200
    for _ in range(3):
        name = new_blob_name()
        store.write(name, [b"ciphertext"])
        os.utime(tmp_path / "blobs" / name[:2] / name, (two_hours_ago, two_hours_ago))
    sweeping = threading.Thread(target=job, args=(database, store, NOW))  # type: ignore[arg-type]
    sweeping.start()
    try:
        assert store.listing.wait(30)
        written = threading.Thread(target=make_organisation, args=(database, "PRV77"))
        written.start()
        written.join(10)
        assert not written.is_alive(), "a write waited for the sweep's listing"
        assert sweeping.is_alive()  # still listing
    finally:
        store.go_on.set()
        sweeping.join(30)
    assert list(store.names()) == []


def test_one_sweep_at_a_time(database: Database, fresh_database_url: str, tmp_path: Path) -> None:
    """While another process (its own connection, or its own file lock) holds the sweep,
    the hourly sweep does nothing and `exchange sweep` waits for it; the lock is free
    again after a job that failed."""
    store = FileBlobStore(tmp_path / "blobs")
    orphan = new_blob_name()
    store.write(orphan, [b"ciphertext"])
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / "blobs" / orphan[:2] / orphan, (two_hours_ago, two_hours_ago))
    other = Database(fresh_database_url)
    try:
        with other.job(housekeeping.SWEEPER, wait=False) as held:
            assert held
            hourly_sweep(database, store, NOW)
            assert list(store.names()) == [orphan] and _retention_records(database) == []
            waiting = threading.Thread(target=sweep, args=(database, store, NOW))
            waiting.start()
            waiting.join(1)
            assert waiting.is_alive()  # waits for the other's sweep
        waiting.join(30)
        assert list(store.names()) == []

        def failing_job() -> None:
            with other.job(housekeeping.SWEEPER, wait=False) as held:
                assert held
                raise RuntimeError("the job failed")

        with pytest.raises(RuntimeError, match="the job failed"):
            failing_job()
        with database.job(housekeeping.SWEEPER, wait=False) as held:
            assert held
    finally:
        other.dispose()
