"""Test factories: a controllable clock, registry entries, key pairs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "spec"
EXAMPLE_BOOTSTRAP = SPEC_DIR / "examples" / "bootstrap.json"


@dataclass
class FrozenClock:
    """A clock that stands still until told to move."""

    current: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def example_bootstrap() -> dict[str, Any]:
    """The spec's example bootstrap file, parsed."""
    document: dict[str, Any] = json.loads(EXAMPLE_BOOTSTRAP.read_text(encoding="utf-8"))
    return document


def audit_entry(number: int = 0, **overrides: Any) -> AuditEntry:
    """A plausible audit entry (a read by a client), distinct per `number`."""
    values: dict[str, Any] = {
        "kind": AuditKind.READ,
        "action": Action.READ,
        "outcome": Outcome.SUCCESS,
        "actor": Actor(client_id=f"client-{number % 7}", organisation="LA01", address="127.0.0.1", token_jti=f"jti-{number}"),
        "request_id": f"req-{number}",
    }
    values.update(overrides)
    return AuditEntry(**values)
