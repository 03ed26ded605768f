"""Operator jobs on document content: sweeping orphans and expired uploads, and retention's
crypto-shredding (`documents.md`). Re-wrapping data keys is `exchange.key_rotation`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from exchange.audit.chain import take_sealer_lock
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.service import record
from exchange.db import Database
from exchange.documents.models import BinaryRow, DocumentRow
from exchange.storage.blobs import BlobStore, StorageUnavailable

log = logging.getLogger(__name__)

UNATTACHED_LIFETIME: Final = timedelta(hours=24)
#: A blob younger than this may belong to an upload whose row is not committed yet.
ORPHAN_GRACE: Final = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What a sweep removed: `orphan_blobs` and the keys of `expired_uploads`; `left`
    blobs the store would not delete now (the next sweep removes them)."""

    orphan_blobs: int
    expired_uploads: int
    left: int = 0


def sweep(database: Database, store: BlobStore, now: datetime) -> SweepResult:
    """`exchange sweep`, as the operator, audited: see `_sweep`."""
    with database.transaction() as session:
        result, names = _sweep(session, store, now, Actor.operator(), audit_idle=True)
    return replace(result, left=_delete_blobs(store, names))


def hourly_sweep(database: Database, store: BlobStore, now: datetime) -> None:
    """The server's hourly sweep: skipped while another process is making one, and audited
    (as `exchange-sweeper`) only when it removed something."""
    with database.transaction() as session:
        if not take_sealer_lock(session):
            return
        _, names = _sweep(session, store, now, Actor(user="exchange-sweeper"), audit_idle=False)
    _delete_blobs(store, names)


def _sweep(
    session: Session, store: BlobStore, now: datetime, actor: Actor, *, audit_idle: bool
) -> tuple[SweepResult, list[str]]:
    """Find blobs no live Binary names (older than the grace period, so in-flight uploads
    are safe; a crypto-shredded Binary's blob is ciphertext nobody can open), and destroy
    the keys of Binaries never attached within 24 hours (the row stays as a record,
    crypto-shredded); audit the run as `actor`'s. Returns the blobs to delete once this
    has committed: a failure in between leaves undecryptable ciphertext, which the next
    sweep removes, never a row that offers content that is gone."""
    known = set(session.scalars(select(BinaryRow.blob_name).where(BinaryRow.destroyed.is_(None))))
    orphans = [
        name
        for name in list(store.names())
        if name not in known and (age := store.age(name)) is not None and age > ORPHAN_GRACE
    ]
    expired = session.scalars(
        select(BinaryRow).where(
            BinaryRow.document_id.is_(None),
            BinaryRow.destroyed.is_(None),
            BinaryRow.created < now - UNATTACHED_LIFETIME,
        )
    ).all()
    for row in expired:
        row.wrapped_key = None
        row.destroyed = now
    result = SweepResult(len(orphans), len(expired))
    if audit_idle or orphans or expired:
        details = {
            "job": "sweep",
            "orphan-blobs": str(result.orphan_blobs),
            "expired-uploads": str(result.expired_uploads),
        }
        record(session, _housekeeping_entry(actor, details), at=now)
    return result, orphans + [row.blob_name for row in expired]


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
    operator, audited. Its data key is destroyed and the run recorded in one transaction,
    then its blob is deleted; the DocumentReference and the audit trail are kept
    (`documents.md`, Changes). A dry run only counts, and records nothing."""
    with database.transaction() as session:
        documents = session.scalars(select(DocumentRow).where(DocumentRow.date < before)).all()
        binary_ids = [document.binary_id for document in documents]
        binaries = (
            session.scalars(
                select(BinaryRow).where(BinaryRow.id.in_(binary_ids), BinaryRow.destroyed.is_(None))
            ).all()
            if binary_ids
            else []
        )
        result = RetentionResult(len(documents), len(binaries))
        if dry_run:
            return result
        for row in binaries:
            row.wrapped_key = None
            row.destroyed = now
        details = {
            "before": before.date().isoformat(),
            "documents": str(result.documents),
            "shredded": str(result.binaries),
        }
        record(session, _housekeeping_entry(Actor.operator(), details), at=now)
        shredded = [row.blob_name for row in binaries]
    return replace(result, left=_delete_blobs(store, shredded))
