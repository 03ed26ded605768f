"""Aggregating repeated identical token failures (`api.md`): the first failure of a kind
from one source is audited at once; identical ones within the next minute are counted and
audited as one event with the count when the window closes. An anonymous flood therefore
adds at most one or two audit records a minute per source and error, yet every attempt is
accounted for."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.service import record
from exchange.auth.models import AuthFailureWindow
from exchange.clock import Clock

WINDOW: Final = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class TokenFailure:
    """One refused token request: where from, who it claimed to be, and why."""

    source: str
    claimed_client: str | None
    error: str
    reason: str
    request_id: str | None = None

    @property
    def key(self) -> str:
        """The identity of "identical" failures."""
        text = "\x1f".join((self.source, self.claimed_client or "", self.error, self.reason))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _entry(
    failure: TokenFailure, count: int, since: datetime | None, until: datetime | None
) -> AuditEntry:
    details = {"error": failure.error}
    if failure.claimed_client:
        details["claimed-client"] = failure.claimed_client
    if count > 1 or since is not None:
        details["count"] = str(count)
        if since is not None and until is not None:
            details["aggregated-from"] = since.isoformat()
            details["aggregated-to"] = until.isoformat()
    return AuditEntry(
        kind=AuditKind.TOKEN,
        action=Action.EXECUTE,
        outcome=Outcome.MINOR_FAILURE,
        actor=Actor(address=failure.source, user="anonymous"),
        outcome_desc=f"{failure.error}: {failure.reason}",
        request_id=failure.request_id,
        details=details,
    )


def record_token_failure(session: Session, failure: TokenFailure, clock: Clock) -> bool:
    """Audit a token failure, or count it in the open window. True if an event was written."""
    now = clock.now()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(AuthFailureWindow)
        .values(
            key=failure.key,
            source=failure.source[:64],
            claimed_client=(failure.claimed_client or "")[:128] or None,
            error=failure.error[:64],
            reason=failure.reason[:256],
            window_start=now,
            suppressed=-1,  # marks a row this call created
        )
        .on_conflict_do_nothing(index_elements=["key"])
    )
    window = session.scalars(
        select(AuthFailureWindow).where(AuthFailureWindow.key == failure.key).with_for_update()
    ).one()
    if window.suppressed == -1:
        window.suppressed = 0
        record(session, _entry(failure, 1, None, None), clock)
        return True
    if now - window.window_start < WINDOW:
        window.suppressed += 1
        return False
    if window.suppressed:
        record(session, _entry(failure, window.suppressed, window.window_start, now), clock)
    window.window_start, window.suppressed = now, 0
    record(session, _entry(failure, 1, None, None), clock)
    return True


def flush_failure_windows(session: Session, clock: Clock) -> int:
    """Close windows older than a minute, auditing their counts; return events written."""
    now = clock.now()
    written = 0
    windows = session.scalars(
        select(AuthFailureWindow)
        .where(AuthFailureWindow.window_start < now - WINDOW)
        .with_for_update()
    ).all()
    for window in windows:
        if window.suppressed > 0:
            failure = TokenFailure(
                window.source, window.claimed_client, window.error, window.reason
            )
            record(session, _entry(failure, window.suppressed, window.window_start, now), clock)
            written += 1
        session.delete(window)
    return written
