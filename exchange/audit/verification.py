"""Audit integrity for the console: the last verification and checkpoint, and "verify now",
which runs `chain.verify_chain` and `checkpoint.verify_checkpoints` in the background and
writes its progress to `audit_verification`, so any worker can show it.

The run verifies in parts, each in a transaction of its own and linked to the part before
by hash: on SQLite every transaction holds the write lock, so one long transaction would
stall every audited request for the length of the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from exchange.audit.chain import ChainHead, chain_head, oldest_unsealed, sealed_count, verify_chain
from exchange.audit.checkpoint import latest_checkpoint, verify_checkpoints
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.models import AuditVerification
from exchange.audit.sealer import seal_all
from exchange.audit.service import record
from exchange.clock import Clock
from exchange.db import Database

log = logging.getLogger(__name__)

#: Records verified per transaction.
PART: Final = 20_000
#: A running verification that has not written its progress for this long has died (its
#: worker was stopped): it is shown as stopped, and a new one may start.
STALE_AFTER: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Run:
    """A verification run as the console shows it."""

    id: int
    started: datetime
    started_by: str
    status: str
    total: int
    checked: int
    finished: datetime | None
    last_sequence: int | None
    broken_sequence: int | None
    problem: str | None

    @property
    def running(self) -> bool:
        """Whether the run is still going."""
        return self.status == "running"

    @property
    def percent(self) -> int:
        """How far it has got, 0-100."""
        return 100 if not self.total else min(100, self.checked * 100 // self.total)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The newest signed checkpoint."""

    sequence: int
    hash: str
    created: datetime
    key_id: str


@dataclass(frozen=True, slots=True)
class Integrity:
    """What the audit integrity page shows."""

    head: ChainHead
    oldest_unsealed: datetime | None
    checkpoint: Checkpoint | None
    latest_run: Run | None
    last_completed: Run | None


def _run(row: AuditVerification, now: datetime) -> Run:
    status = row.status
    if status == "running" and now - row.heartbeat > STALE_AFTER:
        status = "stopped"
    return Run(
        row.id,
        row.started,
        row.started_by,
        status,
        row.total,
        row.checked,
        row.finished,
        row.last_sequence,
        row.broken_sequence,
        row.problem,
    )


def integrity(session: Session, now: datetime) -> Integrity:
    """The chain head, the sealing backlog, the newest checkpoint and verification runs."""
    runs = list(
        session.scalars(select(AuditVerification).order_by(AuditVerification.id.desc()).limit(20))
    )
    latest = _run(runs[0], now) if runs else None
    completed = next((_run(r, now) for r in runs if r.status in ("passed", "failed")), None)
    checkpoint = latest_checkpoint(session)
    return Integrity(
        chain_head(session),
        oldest_unsealed(session),
        Checkpoint(checkpoint.sequence, checkpoint.hash, checkpoint.created, checkpoint.key_id)
        if checkpoint
        else None,
        latest,
        completed,
    )


def start_verification(
    session: Session, actor: Actor, request_id: str | None, now: datetime
) -> tuple[int, bool]:
    """Register a new run (audited), or find the one already running: (its id, whether it
    is new). The caller then runs `run_verification` for a new one, in the background."""
    running = session.scalars(
        select(AuditVerification)
        .where(AuditVerification.status == "running")
        .order_by(AuditVerification.id.desc())
    ).first()
    if running is not None and now - running.heartbeat <= STALE_AFTER:
        return running.id, False
    run = AuditVerification(
        started=now,
        started_by=actor.user or actor.client_id or "operator",
        status="running",
        total=0,
        checked=0,
        heartbeat=now,
    )
    session.add(run)
    session.flush()
    _audit(session, actor, now, request_id, {"run": str(run.id), "state": "started"})
    return run.id, True


def _audit(
    session: Session,
    actor: Actor,
    now: datetime,
    request_id: str | None,
    details: dict[str, str],
    outcome: Outcome = Outcome.SUCCESS,
    reason: str | None = None,
) -> None:
    record(
        session,
        AuditEntry(
            kind=AuditKind.AUDIT_VERIFY,
            action=Action.EXECUTE,
            outcome=outcome,
            actor=actor,
            outcome_desc=reason,
            details=details,
            request_id=request_id,
        ),
        at=now,
    )


def _progress(database: Database, run_id: int, clock: Clock, **values: object) -> None:
    with database.transaction() as session:
        run = session.get(AuditVerification, run_id)
        if run is None:
            raise LookupError(f"verification run {run_id} is not registered")
        for name, value in values.items():
            setattr(run, name, value)
        run.heartbeat = clock.now()


def run_verification(
    database: Database,
    run_id: int,
    actor: Actor,
    public_key: Callable[[], Ed25519PublicKey],
    clock: Clock,
) -> None:
    """Seal what is pending, verify the chain part by part and every checkpoint, writing
    progress as it goes and the outcome at the end (audited). Never raises: a run that
    cannot finish is recorded as an error for the operator to look into."""
    try:
        seal_all(database)
        with database.transaction() as session:
            total = sealed_count(session)
        _progress(database, run_id, clock, total=total)
        start, previous, checked = 1, None, 0
        while True:
            with database.transaction() as session:
                result = verify_chain(
                    session, start, until=start + PART - 1, previous_hash=previous
                )
            checked += result.checked
            if not result.ok or result.checked < PART:
                break
            start, previous = result.last_sequence + 1, result.last_hash
            _progress(database, run_id, clock, checked=checked)
        problem = result.problem
        broken = result.broken_sequence
        if result.ok:
            with database.transaction() as session:
                problems = verify_checkpoints(session, public_key())
            if problems:
                broken = problems[0].sequence
                problem = f"checkpoint {problems[0].checkpoint_id}: {problems[0].problem}"
        status = "passed" if problem is None else "failed"
        now = clock.now()
        _progress(
            database,
            run_id,
            clock,
            checked=checked,
            status=status,
            finished=now,
            last_sequence=result.last_sequence,
            broken_sequence=broken,
            problem=problem,
        )
        with database.transaction() as session:
            details = {"run": str(run_id), "state": status, "checked": str(checked)}
            if broken is not None:
                details["broken-sequence"] = str(broken)
            _audit(
                session,
                actor,
                now,
                None,
                details,
                Outcome.SUCCESS if status == "passed" else Outcome.SERIOUS_FAILURE,
                problem,
            )
    except Exception as error:  # noqa: BLE001 - a background thread has no one to raise to
        log.error("audit verification failed", extra={"error": type(error).__name__})
        try:
            _progress(
                database,
                run_id,
                clock,
                status="error",
                finished=clock.now(),
                problem=f"the verification stopped ({type(error).__name__})",
            )
        except (SQLAlchemyError, LookupError):
            log.error("could not record the failed verification", extra={"run": run_id})
