"""The in-server sealer: a daemon thread per worker process that seals committed audit
records every `interval` seconds, signs a checkpoint every hour, and once a minute runs
the service's housekeeping (expired jtis and tokens, closed token-failure windows). Only
one process seals at a time (a database lock), so any number of workers and hosts can run
it; if every one stops, readiness reports the unsealed backlog once it is older than a
minute.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from exchange.audit.chain import SEAL_BATCH, seal_pending, take_sealer_lock
from exchange.audit.checkpoint import create_checkpoint, latest_checkpoint
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.models import AuditCheckpoint
from exchange.audit.service import record
from exchange.clock import Clock
from exchange.crypto.keyring import Keyring, KeyringError
from exchange.db import Database

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL: Final = timedelta(hours=1)


def seal_all(database: Database) -> int:
    """Seal every record committed before it looked, batch by batch; return how many were
    sealed. A batch that was not full took every one there was: it stops there, and what
    commits meanwhile waits for the next call. (Going on until a batch found nothing kept
    the sealer sealing a few records at a time under load, each batch paying its lock, head
    and queries: a tenth of a document read's server time, bench/profiles/api-load.md.)"""
    total = 0
    while True:
        with database.transaction() as session:
            sealed = seal_pending(session, SEAL_BATCH)
        total += sealed
        if sealed < SEAL_BATCH:
            return total


def checkpoint_if_due(database: Database, keyring: Keyring, clock: Clock) -> bool:
    """Write a checkpoint if the last is older than an hour; True if one was written."""
    with database.transaction() as session:
        if not take_sealer_lock(session):
            return False
        last = latest_checkpoint(session)
        now = clock.now()
        if last is not None and now - last.created < CHECKPOINT_INTERVAL:
            return False
        return create_checkpoint(session, keyring, now) is not None


def sign_checkpoint(database: Database, keyring: Keyring, now: datetime) -> AuditCheckpoint | None:
    """`exchange audit checkpoint`: seal what is pending, sign the chain's head and audit the
    signing as the operator's (sealed too, so the checkpoint's own record is in the chain);
    None if the chain is empty."""
    seal_all(database)
    with database.transaction() as session:
        made = create_checkpoint(session, keyring, now)
        if made is not None:
            entry = AuditEntry(
                kind=AuditKind.AUDIT_CHECKPOINT,
                action=Action.EXECUTE,
                outcome=Outcome.SUCCESS,
                actor=Actor.operator(),
                details={"sequence": str(made.sequence), "hash": made.hash},
            )
            record(session, entry, at=now)
    seal_all(database)
    return made


class Sealer:
    """Runs `seal_all` (and hourly checkpoints) in the background until stopped."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        load_keyring: Callable[[], Keyring],
        interval: float = 1.0,
        housekeeping: Callable[[], object] | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._load_keyring = load_keyring
        self._interval = interval
        self._housekeeping = housekeeping
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)

    def start(self) -> None:
        """Start sealing in the background."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current batch."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(self._interval):
            try:
                seal_all(self._database)
                if ticks % 60 == 0:
                    checkpoint_if_due(self._database, self._load_keyring(), self._clock)
                    if self._housekeeping is not None:
                        self._housekeeping()
            except (SQLAlchemyError, KeyringError) as exc:
                # Transient trouble: try again next tick; readiness raises the alarm if the
                # backlog grows old.
                log.warning("audit sealing failed", extra={"error": type(exc).__name__})
            ticks += 1
