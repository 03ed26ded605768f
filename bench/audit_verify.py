"""Audit benchmarks (`quality.md`), on PostgreSQL, ratios measured in one run:

1. append throughput with 8 concurrent writers, each append its own transaction, against
   the same INSERT transactions into an unchained copy of the table (target >= 0.5);
2. `verify_chain` against reading the same rows and SHA-256 over their stored bytes
   (target >= 0.5).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import time

from sqlalchemy import text

from bench.database import scratch_schema
from exchange.audit.chain import iter_sealed, verify_chain
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.sealer import seal_all
from exchange.audit.service import record
from exchange.clock import SystemClock
from exchange.db import Database

WRITERS = 8
APPENDS_PER_WRITER = 400
VERIFY_ROWS = 50_000


def _entry(number: int) -> AuditEntry:
    return AuditEntry(
        kind=AuditKind.READ,
        action=Action.READ,
        outcome=Outcome.SUCCESS,
        actor=Actor(
            client_id="bench-client",
            organisation="LA01",
            address="127.0.0.1",
            token_jti=f"jti-{number}",
        ),
        request_id=f"bench-{number}",
    )


def _chained_writer(url: str, worker: int) -> None:
    database, clock = Database(url), SystemClock()
    for number in range(APPENDS_PER_WRITER):
        with database.transaction() as session:
            record(session, _entry(worker * 1_000_000 + number), clock)
    database.dispose()


def _plain_writer(url: str, worker: int) -> None:
    database, clock = Database(url), SystemClock()
    for number in range(APPENDS_PER_WRITER):
        with database.transaction() as session:
            row = record(session, _entry(worker * 1_000_000 + number), clock)
            session.expunge(row)  # the same row, written to the unchained table instead
            session.execute(
                text(
                    "INSERT INTO audit_plain (event_id, recorded, payload, kind, action, outcome,"
                    " agent_client_id, agent_org, request_id, break_glass)"
                    " VALUES (:e, :r, :p, :k, :a, :o, :c, :g, :q, false)"
                ),
                {
                    "e": row.event_id,
                    "r": row.recorded,
                    "p": row.payload,
                    "k": row.kind,
                    "a": row.action,
                    "o": row.outcome,
                    "c": row.agent_client_id,
                    "g": row.agent_org,
                    "q": row.request_id,
                },
            )
    database.dispose()


def _run_writers(target: object, url: str) -> float:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=(url, worker)) for worker in range(WRITERS)]
    started = time.perf_counter()
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    return WRITERS * APPENDS_PER_WRITER / (time.perf_counter() - started)


def append_throughput(url: str) -> tuple[float, float]:
    """(chained appends/s, unchained inserts/s) with 8 writers."""
    database = Database(url)
    with database.transaction() as session:
        session.execute(
            text(
                "CREATE TABLE audit_plain (id bigserial PRIMARY KEY, event_id uuid UNIQUE NOT NULL,"
                " recorded timestamptz NOT NULL, payload text NOT NULL, kind varchar(64),"
                " action varchar(1), outcome varchar(2), agent_client_id varchar(128),"
                " agent_org varchar(32), request_id varchar(64),"
                " break_glass boolean NOT NULL)"
            )
        )
        session.execute(text("CREATE INDEX ON audit_plain (recorded)"))
        session.execute(text("CREATE INDEX ON audit_plain (agent_org, recorded)"))
    database.dispose()
    plain = _run_writers(_plain_writer, url)
    chained = _run_writers(_chained_writer, url)
    return chained, plain


def verify_speed(url: str) -> tuple[float, float]:
    """(verify rows/s, read+hash rows/s) over the same sealed rows."""
    database, clock = Database(url), SystemClock()
    with database.transaction() as session:
        for number in range(VERIFY_ROWS):
            record(session, _entry(number), clock)
    seal_all(database)
    with database.transaction() as session:
        started = time.perf_counter()
        rows = 0
        for row in iter_sealed(session, 1):
            hashlib.sha256(row.payload.encode("utf-8")).hexdigest()
            rows += 1
        baseline = rows / (time.perf_counter() - started)
        started = time.perf_counter()
        result = verify_chain(session)
        verified = result.checked / (time.perf_counter() - started)
    database.dispose()
    assert result.ok
    return verified, baseline


def main() -> None:
    """Print the audit rows of the benchmark table."""
    with scratch_schema() as url:
        chained, plain = append_throughput(url)
        verified, baseline = verify_speed(url)
    print(f"{'benchmark':<48} {'measured':>14} {'baseline':>14} {'ratio':>7} {'target':>7}")
    print(
        f"{'audit append, 8 writers (rec/s)':<48} {chained:>14.0f} {plain:>14.0f} "
        f"{chained / plain:>7.2f} {'>=0.5':>7}"
    )
    print(
        f"{'audit verify (rec/s)':<48} {verified:>14.0f} {baseline:>14.0f} "
        f"{verified / baseline:>7.2f} {'>=0.5':>7}"
    )


if __name__ == "__main__":
    main()
