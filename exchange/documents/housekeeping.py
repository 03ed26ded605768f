"""Operator jobs on document content: sweeping orphans and expired uploads, and retention's
crypto-shredding (`documents.md`). Re-wrapping data keys is `exchange.key_rotation`.

National scale holds 10,000,000 documents (`quality.md`), so no job here holds every blob
name or row in memory: the store's names are checked against the database `BATCH` at a
time, and retention goes through the documents in batches, each shredded and audited in
a transaction of its own (bench/operator_jobs.py measures the sweep, and key rotation,
which goes the same way).
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.service import record
from exchange.db import Database, among
from exchange.documents.models import BinaryRow, DocumentRow
from exchange.storage.blobs import BlobStore, StorageUnavailable

log = logging.getLogger(__name__)

UNATTACHED_LIFETIME: Final = timedelta(hours=24)
#: A blob younger than this may belong to an upload whose row is not committed yet.
ORPHAN_GRACE: Final = timedelta(hours=1)
#: Blob names checked against the database, or documents shredded, at a time.
BATCH: Final = 1000
#: The most blobs one sweep removes, and keys it destroys (the rest go at the next): the
#: names it deletes once its transaction has committed are held until then.
SWEEP_LIMIT: Final = 100_000
#: The job lock a sweep holds (`Database.job`): one sweep at a time across processes.
SWEEPER: Final = "blob-sweeper"


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What a sweep removed: `orphan_blobs`, the keys of `expired_uploads`, and what
    `abandoned_writes` left in the store (a process killed mid-upload); `left` blobs the
    store would not delete now (the next sweep removes them)."""

    orphan_blobs: int
    expired_uploads: int
    left: int = 0
    abandoned_writes: int = 0


def sweep(database: Database, store: BlobStore, now: datetime) -> SweepResult:
    """`exchange sweep`, as the operator, audited: see `_sweep`. A sweep already running
    (a server's hourly one) is waited for."""
    with database.job(SWEEPER, wait=True):
        result, names = _sweep(database, store, now, Actor.operator(), audit_idle=True)
        return replace(result, left=_delete_blobs(store, names))


def hourly_sweep(database: Database, store: BlobStore, now: datetime) -> None:
    """The server's hourly sweep: skipped while another process is making one, and audited
    (as `exchange-sweeper`) only when it removed something."""
    with database.job(SWEEPER, wait=False) as ours:
        if ours:
            _, names = _sweep(
                database, store, now, Actor(user="exchange-sweeper"), audit_idle=False
            )
            _delete_blobs(store, names)


def _sweep(
    database: Database, store: BlobStore, now: datetime, actor: Actor, *, audit_idle: bool
) -> tuple[SweepResult, list[str]]:
    """Find blobs no live Binary names (older than the grace period, so in-flight uploads
    are safe; a crypto-shredded Binary's blob is ciphertext nobody can open), and destroy
    the keys of Binaries never attached within 24 hours (the row stays as a record,
    crypto-shredded); audit the run as `actor`'s. Run under the sweeper's job lock. The
    store is listed outside any write transaction (on SQLite, writers are not held up
    while it is: bench/operator_jobs.py); only the keys' destruction and the audit record
    take one. Returns the blobs to delete once that has committed: a failure in between
    leaves undecryptable ciphertext, which the next sweep removes, never a row that offers
    content that is gone. What writes that never finished left in the store (no row or
    key ever named it) is removed first, past the same grace period, and counted."""
    abandoned = store.clear_abandoned(ORPHAN_GRACE)
    orphans = list(itertools.islice(_orphans(database, store), SWEEP_LIMIT))
    with database.transaction() as session:
        unattached = (
            select(BinaryRow.id)
            .where(
                BinaryRow.document_id.is_(None),
                BinaryRow.destroyed.is_(None),
                BinaryRow.created < now - UNATTACHED_LIFETIME,
            )
            .limit(SWEEP_LIMIT)
        )
        expired = _shred(session, BinaryRow.id.in_(unattached), now)
        result = SweepResult(len(orphans), len(expired), abandoned_writes=abandoned)
        if audit_idle or orphans or expired or abandoned:
            details = {
                "job": "sweep",
                "orphan-blobs": str(result.orphan_blobs),
                "expired-uploads": str(result.expired_uploads),
            }
            if abandoned:
                details["abandoned-writes"] = str(abandoned)
            record(session, _housekeeping_entry(actor, details), at=now)
    return result, orphans + expired


def _orphans(database: Database, store: BlobStore) -> Iterator[str]:
    """The store's blobs that no live Binary names, past the grace period: the store's
    names are read as they are listed and checked `BATCH` at a time (by the unique index
    on `blob_name`, in a read session of each batch's own), never all held at once."""
    names = iter(store.names())
    while batch := list(itertools.islice(names, BATCH)):
        with database.read_session() as session:
            live = set(
                session.scalars(
                    select(BinaryRow.blob_name).where(
                        among(session, BinaryRow.blob_name, batch), BinaryRow.destroyed.is_(None)
                    )
                )
            )
        for name in batch:
            if name not in live and (age := store.age(name)) is not None and age > ORPHAN_GRACE:
                yield name


def _delete_blobs(store: BlobStore, names: list[str]) -> int:
    """Delete blobs whose keys are gone (committed); how many the store would not delete
    now. Those are ciphertext nobody can open, and the next sweep removes them."""
    left = 0
    for name in names:
        try:
            store.delete(name)
        except (StorageUnavailable, OSError) as error:
            left += 1
            log.warning(
                "a blob could not be deleted; the next sweep will",
                extra={"error": type(error).__name__},
            )
    return left


def _housekeeping_entry(actor: Actor, details: dict[str, str]) -> AuditEntry:
    """The audit entry of a run that deleted document content (a sweep or retention)."""
    return AuditEntry(
        kind=AuditKind.RETENTION,
        action=Action.DELETE,
        outcome=Outcome.SUCCESS,
        actor=actor,
        details=details,
    )


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """The documents a retention run covers (or would cover, in a dry run); `left` blobs
    the store would not delete now (the next sweep removes them)."""

    documents: int
    binaries: int
    left: int = 0


def apply_retention(
    database: Database, store: BlobStore, before: datetime, now: datetime, dry_run: bool
) -> RetentionResult:
    """`exchange retention apply`: crypto-shred every document dated before `before`, as the
    operator, audited. The documents go in batches of `BATCH`, in id order: a batch's data
    keys are destroyed and recorded in one transaction, then its blobs are deleted; the
    DocumentReference and the audit trail are kept (`documents.md`, Changes). A run that
    stops part-way leaves whole batches done, each audited, and running it again goes on.
    A dry run only counts, and records nothing."""
    if dry_run:
        with database.read_session() as session:  # a count: no writer lock on SQLite
            return _retention_counts(session, before)
    documents = shredded = left = 0
    after: uuid.UUID | None = None
    while True:
        with database.transaction() as session:
            batch = _documents_before(session, before, after)
            ids = [binary for _, binary in batch]
            names = _shred(session, BinaryRow.id.in_(ids), now) if ids else []
            if names or (not batch and shredded == 0):
                # Each batch that destroyed keys is audited with it; a run that destroyed
                # none is audited once, at its end, with the documents it went through.
                details = {
                    "before": before.date().isoformat(),
                    "documents": str(len(batch) if batch else documents),
                    "shredded": str(len(names)),
                }
                record(session, _housekeeping_entry(Actor.operator(), details), at=now)
        if not batch:
            break
        left += _delete_blobs(store, names)
        documents, shredded, after = documents + len(batch), shredded + len(names), batch[-1][0]
    return RetentionResult(documents, shredded, left)


def _retention_counts(session: Session, before: datetime) -> RetentionResult:
    dated = select(DocumentRow.binary_id).where(DocumentRow.date < before)
    documents = session.scalar(select(func.count()).select_from(dated.subquery()))
    binaries = session.scalar(
        select(func.count())
        .select_from(BinaryRow)
        .where(BinaryRow.id.in_(dated), BinaryRow.destroyed.is_(None))
    )
    return RetentionResult(documents or 0, binaries or 0)


def _documents_before(
    session: Session, before: datetime, after: uuid.UUID | None
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The next documents dated before `before`, in id order (the primary key's index,
    read once over the whole run): (document id, its Binary's id)."""
    query = select(DocumentRow.id, DocumentRow.binary_id).where(DocumentRow.date < before)
    if after is not None:
        query = query.where(DocumentRow.id > after)
    rows = session.execute(query.order_by(DocumentRow.id).limit(BATCH))
    return [(row.id, row.binary_id) for row in rows]


def _shred(session: Session, which: ColumnElement[bool], now: datetime) -> list[str]:
    """Destroy the data keys of the Binaries `which` selects, those not destroyed yet (the
    sweep's expired uploads, a retention batch): one statement; their blobs' names."""
    shredded = session.execute(
        update(BinaryRow)
        .where(which, BinaryRow.destroyed.is_(None))
        .values(wrapped_key=None, destroyed=now)
        .returning(BinaryRow.blob_name),
        execution_options={"synchronize_session": False},
    )
    return list(shredded.scalars())
