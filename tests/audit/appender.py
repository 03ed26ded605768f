"""A separate process that appends audit records, each in its own transaction, optionally
running the background sealer at the same time (used by test_concurrency)."""

from __future__ import annotations

import sys
import time

from exchange.audit.sealer import Sealer
from exchange.audit.service import record
from exchange.clock import SystemClock
from exchange.crypto.keyring import Keyring
from exchange.db import Database
from tests.factories import audit_entry


def main(url: str, worker: int, count: int, with_sealer: bool) -> None:
    database = Database(url)
    clock = SystemClock()
    keyring = Keyring.generate(clock.now())
    sealer = Sealer(database, clock, lambda: keyring, interval=0.05) if with_sealer else None
    if sealer is not None:
        sealer.start()
    for number in range(count):
        with database.transaction() as session:
            record(session, audit_entry(worker * 100_000 + number), clock)
    if sealer is not None:
        time.sleep(0.2)
        sealer.stop()
    database.dispose()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "sealer")
