"""The hash chain: canonical bytes, sealing in commit order, and verification.

Each sealed record has `hash = SHA-256(previousHash || canonical)` where `canonical` is the
canonical JSON (sorted keys, no whitespace, UTF-8) of `{"record": <AuditEvent>,
"sequence": "<n>"}`. The stored payload is already canonical, so the canonical bytes are
built by concatenation and verification never re-serialises: it runs at the speed of
hashing the stored bytes (`quality.md`).

Appends do not touch the chain: `record()` inserts an unsealed row in the caller's
transaction, and the sealer (one at a time, under a lock) gives committed rows their
sequence and hash shortly after. Serialising every business transaction on a chain head
would cap throughput at one commit at a time (`audit.md`, `quality.md`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

import orjson
from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from exchange.audit.models import AuditRecord
from exchange.db import take_job_lock

log = logging.getLogger(__name__)

GENESIS_HASH: Final = "0" * 64
SEAL_BATCH: Final = 5000
#: An unsealed record older than this is an alarm: the sealer is not running (`audit.md`).
UNSEALED_ALARM_AGE: Final = timedelta(minutes=1)


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 characters kept as they are.

    orjson writes what `json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)` wrote before it, byte for byte, for every value an audit record
    or checkpoint holds (strings, integers, booleans, null, arrays, objects:
    tests/audit/test_chain.py), at a fifth of the cost; what orjson refuses (an integer
    beyond 64 bits) still goes through `json`."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(previous_hash: str, sequence: int, payload: str | bytes) -> str:
    """The hash of a sealed record, from its predecessor's hash and its own canonical JSON."""
    payload_bytes = payload.encode("utf-8") if isinstance(payload, str) else payload
    digest = hashlib.sha256(previous_hash.encode("ascii"))
    digest.update(b'{"record":')
    digest.update(payload_bytes)
    digest.update(b',"sequence":"%d"}' % sequence)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last sealed record's position and hash."""

    sequence: int
    hash: str


def chain_head(session: Session) -> ChainHead:
    """The current head of the chain (sequence 0 and the genesis hash when empty)."""
    row = session.execute(
        select(AuditRecord.sequence, AuditRecord.hash)
        .where(AuditRecord.sequence.is_not(None))
        .order_by(AuditRecord.sequence.desc())
        .limit(1)
    ).first()
    if row is None or row.sequence is None or row.hash is None:
        return ChainHead(0, GENESIS_HASH)
    return ChainHead(row.sequence, row.hash)


def take_sealer_lock(session: Session) -> bool:
    """Make this transaction the only sealer; False if another process holds the lock
    (`db.take_job_lock`)."""
    return take_job_lock(session, "audit-sealer")


_EVENTS: Final = cast(Table, AuditRecord.__table__)
#: One executemany of plain UPDATEs by primary key (Core, not the ORM's bulk update).
_SEAL: Final = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("row_id"))
    .values(
        sequence=bindparam("seal_sequence"),
        previous_hash=bindparam("seal_previous"),
        hash=bindparam("seal"),
    )
)

#: On PostgreSQL one UPDATE for the whole batch, from arrays: an executemany sent one
#: UPDATE per record, and its pipeline was a fifth of the sealer's time
#: (bench/profiles/api-load.md). SQLite runs in-process: the executemany above.
_SEAL_ALL: Final = text(
    "UPDATE audit_event AS sealed"
    " SET sequence = batch.sequence, previous_hash = batch.previous_hash, hash = batch.hash"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:sequences AS bigint[]),"
    " CAST(:previous AS varchar[]), CAST(:hashes AS varchar[]))"
    " AS batch(id, sequence, previous_hash, hash)"
    " WHERE sealed.id = batch.id AND sealed.sequence IS NULL"
)


def seal_pending(session: Session, batch: int = SEAL_BATCH) -> int:
    """Seal up to `batch` committed, unsealed records in insertion order; return how many.

    Call inside a transaction of its own. Rows inserted by transactions that commit later
    are sealed by a later call, so the chain order is the order records became visible.
    """
    if not take_sealer_lock(session):
        return 0
    head = chain_head(session)
    rows = session.execute(
        select(AuditRecord.id, AuditRecord.payload)
        .where(AuditRecord.sequence.is_(None))
        .order_by(AuditRecord.id)
        .limit(batch)
    ).all()
    if not rows:
        return 0
    updates = []
    previous, sequence = head.hash, head.sequence
    for row in rows:
        sequence += 1
        current = chain_hash(previous, sequence, row.payload)
        updates.append(
            {
                "row_id": row.id,
                "seal_sequence": sequence,
                "seal_previous": previous,
                "seal": current,
            }
        )
        previous = current
    if session.get_bind().dialect.name == "postgresql":
        sealed = session.execute(
            _SEAL_ALL,
            {
                "ids": [update["row_id"] for update in updates],
                "sequences": [update["seal_sequence"] for update in updates],
                "previous": [update["seal_previous"] for update in updates],
                "hashes": [update["seal"] for update in updates],
            },
        )
        if getattr(sealed, "rowcount", len(updates)) != len(updates):
            # Only one sealer runs (the advisory lock): a record sealed meanwhile means
            # that was broken. Roll back rather than leave a gap in the chain.
            raise RuntimeError("audit records were sealed by someone else meanwhile")
    else:
        session.execute(_SEAL, updates)
    return len(updates)


def oldest_unsealed(session: Session) -> datetime | None:
    """When the oldest unsealed record was written, or None if all are sealed."""
    return session.execute(
        select(func.min(AuditRecord.recorded)).where(AuditRecord.sequence.is_(None))
    ).scalar_one()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of a verification: how far it got and the first break, if any."""

    checked: int
    last_sequence: int
    broken_sequence: int | None = None
    problem: str | None = None
    unsealed: int = 0
    #: The hash of `last_sequence` once checked (to link the next part of a verification
    #: done in parts), None if nothing was checked.
    last_hash: str | None = None

    @property
    def ok(self) -> bool:
        """True when every sealed record checked out."""
        return self.broken_sequence is None


def iter_sealed(
    session: Session, start: int, chunk: int = 10_000, until: int | None = None
) -> Iterator[Any]:
    """Sealed rows in sequence order from `start` (to `until`), fetched in keyset pages
    (no OFFSET)."""
    after = start - 1
    while True:
        query = (
            select(
                AuditRecord.sequence,
                AuditRecord.previous_hash,
                AuditRecord.hash,
                AuditRecord.payload,
            )
            .where(AuditRecord.sequence > after)
            .order_by(AuditRecord.sequence)
            .limit(chunk)
        )
        if until is not None:
            query = query.where(AuditRecord.sequence <= until)
        rows = session.execute(query).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].sequence


def verify_chain(
    session: Session,
    start: int = 1,
    progress: Callable[[int], object] | None = None,
    *,
    until: int | None = None,
    previous_hash: str | None = None,
) -> VerifyResult:
    """Recompute the chain from `start` (to `until`); stop at the first modified, missing,
    inserted or reordered record and name its sequence. `previous_hash`: the hash the
    record before `start` was found to have (a verification done in parts), else the link
    into `start` is trusted (`--from N`)."""
    expected_sequence = max(start, 1)
    previous: str | None = GENESIS_HASH if expected_sequence == 1 else previous_hash
    checked = 0
    pending = 0
    for row in iter_sealed(session, expected_sequence, until=until):
        if row.sequence != expected_sequence:
            return VerifyResult(
                checked,
                expected_sequence - 1,
                expected_sequence,
                f"record {expected_sequence} is missing (next is {row.sequence})",
            )
        if previous is None:
            previous = row.previous_hash  # --from N trusts the link into N
        if row.previous_hash != previous:
            return VerifyResult(
                checked,
                row.sequence - 1,
                row.sequence,
                f"record {row.sequence} does not link to record {row.sequence - 1}",
            )
        if chain_hash(previous, row.sequence, row.payload) != row.hash:
            return VerifyResult(
                checked,
                row.sequence - 1,
                row.sequence,
                f"record {row.sequence} was modified (its hash does not match its content)",
            )
        previous = row.hash
        expected_sequence += 1
        checked += 1
        pending += 1
        if progress is not None and pending >= 1000:
            progress(pending)
            pending = 0
    if progress is not None and pending:
        progress(pending)
    unsealed = session.execute(
        select(func.count()).select_from(AuditRecord).where(AuditRecord.sequence.is_(None))
    ).scalar_one()
    last_hash = previous if checked else previous_hash
    return VerifyResult(checked, expected_sequence - 1, unsealed=unsealed, last_hash=last_hash)


def sealed_count(session: Session, start: int = 1) -> int:
    """How many sealed records there are from `start` (for a progress bar's total)."""
    return session.execute(
        select(func.count()).select_from(AuditRecord).where(AuditRecord.sequence >= start)
    ).scalar_one()
