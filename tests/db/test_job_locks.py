"""Operator jobs that must run in one process at a time take a lock of their own: the
hourly sweep (`Database.job`), which lists the whole blob store, must not hold up the audit
sealer (`db.take_job_lock`) meanwhile (they shared one lock)."""

from __future__ import annotations

import pytest

from exchange.audit.chain import take_sealer_lock
from exchange.db import Database, take_job_lock
from exchange.documents.housekeeping import SWEEPER


def test_a_job_lock_excludes_its_own_job_only(database: Database, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite's write transactions exclude each other (BEGIN IMMEDIATE)")
    with database.transaction() as sweeping:
        assert take_job_lock(sweeping, "blob-sweeper")
        with database.transaction() as sealing:
            assert take_sealer_lock(sealing)
            assert not take_job_lock(sealing, "blob-sweeper")
    with database.transaction() as later:
        assert take_job_lock(later, "blob-sweeper")


def test_the_sealer_goes_on_while_a_sweep_runs(database: Database, fresh_database_url: str) -> None:
    """The sweep holds its job while it lists the store; the sealer's transaction takes
    its own lock meanwhile, and a second sweep cannot start."""
    other = Database(fresh_database_url)
    try:
        with database.job(SWEEPER, wait=False) as sweeping:
            assert sweeping
            with database.transaction() as sealing:
                assert take_sealer_lock(sealing)
            with other.job(SWEEPER, wait=False) as second:
                assert not second
        with other.job(SWEEPER, wait=False) as second:
            assert second
    finally:
        other.dispose()
