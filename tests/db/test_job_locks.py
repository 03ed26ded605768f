"""Operator jobs that must run in one process at a time take a lock of their own
(`db.take_job_lock`): the hourly sweep, which lists the whole blob store, must not hold
up the audit sealer meanwhile (they shared one lock)."""

from __future__ import annotations

import pytest

from exchange.audit.chain import take_sealer_lock
from exchange.db import Database, take_job_lock


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
