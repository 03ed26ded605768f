"""The benchmark data generator (`quality.md`, "Scale to plan for"): a synthetic national
deployment at a fraction of England's ten-year figures, bulk-loaded straight into a
migrated PostgreSQL database with `COPY`, with progress bars.

    python -m bench.generate --scale 0.01 --database-url postgresql+psycopg://...

At `--scale 1`: 2,000,000 children (Patients), about 5,000,000 advice requests (Tasks),
about 10,000,000 documents (DocumentReferences, each with its Binary row) and 500,000,000
AuditEvents; the organisations do not scale (150 LAs, 42 ICBs, 300 providers, one
agreement in force per ICB area, one OAuth client per organisation, keyed with
`--client-key`). `--audit-scale` sets the AuditEvents' fraction on its own (at 10% a
tenth of the others' fits this machine's disk). Every row is what the service stores
(`synthetic_records`, `synthetic_audit`); the audit trail is sealed into a chain that
`exchange audit verify` accepts.

Run again with a larger scale to grow the same database: the children already there are
kept and new ones follow (the AuditEvents topped up to their own target). Run it with no
server on the database (the generator seals the chain itself). Documents have metadata
and a Binary row but no content: searching and reading metadata work, reading the bytes
fails (no blob exists).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import psycopg
from joserfc.jwk import ECKey
from psycopg import sql
from sqlalchemy.engine import make_url
from tqdm import tqdm

from bench.copy_rows import COLUMNS, Rows, check_columns, copy_rows
from bench.synthetic_audit import AuditEntries, Chain
from bench.synthetic_records import ChildStory
from bench.synthetic_world import SCOPES, World, build_world, seeded_uuid, world_rows
from exchange.audit.chain import GENESIS_HASH
from exchange.auth.tokens import TOKEN_LIFETIME, token_hash
from tests.factories import nhs_number

#: England over ten years (`quality.md`).
NATIONAL_PATIENTS: Final = 2_000_000
NATIONAL_AUDIT_EVENTS: Final = 500_000_000
YEARS: Final = 10
#: Access tokens live a day after expiry before housekeeping purges them: a day's worth.
TOKENS_PER_DAY_NATIONAL: Final = 200_000
DEFAULT_KEY: Final = Path("var/bench-clients.private.jwk.json")
CHILD_TABLES: Final = (
    "patient",
    "patient_registration",
    "patient_access",
    "consent",
    "task",
    "task_party",
    "binary",
    "document_reference",
    "resource_version",
)


@dataclass
class Loaded:
    """What a run added, and how long it took."""

    scale: float
    audit_scale: float
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    patients: int = 0
    audit_events: int = 0

    def add(self, table: str, count: int) -> None:
        """Count rows copied into `table`."""
        self.rows[table] = self.rows.get(table, 0) + count


def conninfo(database_url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL (its search_path option kept)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def client_key(path: Path) -> ECKey:
    """The private ES256 key every generated client is registered with: read from `path`,
    or made and saved there (readable by its owner only)."""
    if path.exists():
        return ECKey.import_key(json.loads(path.read_text(encoding="utf-8")))
    key = ECKey.generate_key("P-256", parameters={"kid": "bench-generated", "alg": "ES256"})
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(key.as_dict(private=True), handle)
    return key


def public_jwks(key: ECKey) -> dict[str, Any]:
    """The JWKS a client is registered with."""
    return {"keys": [key.as_dict(private=False)]}


def _existing_children(connection: psycopg.Connection[Any]) -> int:
    """How many children earlier runs generated (refusing a database with others)."""
    row = connection.execute("SELECT count(*) FROM patient").fetchone()
    count = int(row[0]) if row else 0
    if count == 0:
        return 0
    found = {
        number
        for (number,) in connection.execute(
            "SELECT nhs_number FROM patient WHERE nhs_number = ANY(%s)",
            ([nhs_number(0), nhs_number(count - 1), nhs_number(count)],),
        )
    }
    if found != {nhs_number(0), nhs_number(count - 1)}:
        raise SystemExit("the database holds patients this generator did not make: use a fresh one")
    return count


def _chain_head(connection: psycopg.Connection[Any]) -> Chain:
    row = connection.execute(
        "SELECT sequence, hash FROM audit_event WHERE sequence IS NOT NULL "
        "ORDER BY sequence DESC LIMIT 1"
    ).fetchone()
    return Chain(int(row[0]), str(row[1])) if row else Chain(0, GENESIS_HASH)


def _reserve_ids(connection: psycopg.Connection[Any], count: int) -> int:
    """The first of `count` consecutive audit_event ids, taken from its sequence."""
    row = connection.execute(
        "SELECT nextval(pg_get_serial_sequence('audit_event', 'id'))"
    ).fetchone()
    assert row is not None
    first = int(row[0])
    connection.execute(
        "SELECT setval(pg_get_serial_sequence('audit_event', 'id'), %s)", (first + count - 1,)
    )
    return first


def _since(connection: psycopg.Connection[Any], until: datetime) -> datetime:
    """Where the data's ten years begin: as the first run set it (its agreements' start)."""
    row = connection.execute(
        "SELECT min(start) FROM agreement WHERE status = 'executed'"
    ).fetchone()
    start: date | None = row[0] if row else None
    if start is None:
        start = (until - timedelta(days=round(365.25 * YEARS))).date()
    return datetime.combine(start, datetime.min.time(), tzinfo=UTC)


def _tokens(world: World, count: int, until: datetime, seed: int) -> list[tuple[Any, ...]]:
    """Access tokens issued in the last day (housekeeping purges older ones)."""
    rng = random.Random(f"{seed}:tokens:{count}:{until.isoformat()}")
    organisations = world.organisations
    rows = []
    for _ in range(count):
        organisation = rng.choice(organisations)
        issued = until - timedelta(seconds=rng.uniform(0, 86_400))
        rows.append(
            (
                token_hash(secrets.token_urlsafe(32)),
                seeded_uuid(rng),
                organisation.client_id,
                " ".join(SCOPES[organisation.role]),
                str(seeded_uuid(rng)),
                issued,
                issued + TOKEN_LIFETIME,
                issued + timedelta(seconds=30) if rng.random() < 0.01 else None,
            )
        )
    return rows


@dataclass
class Run:
    """One run's place in the data: the world, the window, and where each part stands."""

    connection: psycopg.Connection[Any]
    world: World
    since: datetime
    until: datetime
    seed: int
    loaded: Loaded

    def copy(self, table: str, rows: Any) -> None:
        """COPY rows into a table, counted."""
        self.loaded.add(table, copy_rows(self.connection, table, rows))


def generate(
    database_url: str,
    scale: float,
    audit_scale: float | None = None,
    *,
    jwks: dict[str, Any],
    until: datetime | None = None,
    seed: int = 1,
    say: Callable[[str], object] = print,
) -> Loaded:
    """Grow the database at `database_url` (migrated; empty or from an earlier run) to
    `scale` of the national figures, AuditEvents to `audit_scale` (default: `scale`)."""
    check_columns()
    audit_scale = scale if audit_scale is None else audit_scale
    until = until or datetime.now(UTC)
    loaded = Loaded(scale, audit_scale)
    started = time.monotonic()
    with psycopg.connect(conninfo(database_url), autocommit=False) as connection:
        # Nothing is lost by a late flush: a run that dies is run again on a fresh database.
        connection.execute("SET synchronous_commit = off")
        since = _since(connection, until)
        run = Run(connection, build_world(seed, since.date()), since, until, seed, loaded)
        if connection.execute("SELECT count(*) FROM organisation").fetchone() == (0,):
            for table, rows in world_rows(run.world, jwks, until).items():
                run.copy(table, rows)
            connection.commit()
        row = connection.execute("SELECT count(*) FROM access_token").fetchone()
        tokens = max(2_000, round(TOKENS_PER_DAY_NATIONAL * scale)) - int(row[0] if row else 0)
        if tokens > 0:
            run.copy("access_token", _tokens(run.world, tokens, until, seed))
            connection.commit()
        first, last = _existing_children(connection), round(NATIONAL_PATIENTS * scale)
        chain = _chain_head(connection)
        events = max(0, round(NATIONAL_AUDIT_EVENTS * audit_scale) - chain.sequence)
        events = events if last > first else 0
        share = f", {audit_scale / scale:g} of the others'" if audit_scale != scale else ""
        say(
            f"children {first:,} -> {last:,}; AuditEvents {chain.sequence:,} -> "
            f"{chain.sequence + events:,} (audit scale {audit_scale:g}{share})"
        )
        _load_children(run, first, last, chain, events)
        # As autovacuum would leave them in service: planner statistics, and the visibility
        # map set so index-only scans are index-only (only this schema's tables).
        say("VACUUM (ANALYZE) ...")
        connection.autocommit = True
        tables = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        connection.execute(sql.SQL("VACUUM (ANALYZE) {}").format(tables))
    loaded.patients = last - first
    loaded.audit_events = loaded.rows.get("audit_event", 0)
    loaded.seconds = time.monotonic() - started
    return loaded


def _load_children(run: Run, first: int, last: int, chain: Chain, events: int) -> None:
    """Children `first` to `last` (exclusive) and `events` AuditEvents spread over them,
    in batches (one transaction each) of about 50,000 records."""
    per_child = events / (last - first) if last > first else 0.0
    batch = max(50, min(2_000, int(50_000 / max(per_child, 1.0))))
    rows = Rows()
    audit = AuditEntries(run.seed * 7919 + first)
    sealing = random.Random(f"{run.seed}:events:{first}")
    children = tqdm(total=last - first, desc="children", unit="child", disable=None)
    written = tqdm(total=events, desc="AuditEvents", unit="event", disable=None)
    # Millions of short-lived acyclic objects: the cycle collector's passes over them cost
    # a fifth of the run; the few cycles (a child's pending entries) go after each batch.
    gc.disable()
    try:
        with children, written:
            for start in range(first, last, batch):
                for index in range(start, min(start + batch, last)):
                    story = ChildStory(
                        run.world, run.seed, index, run.since, run.until, rows, audit
                    )
                    story.write()
                    audit.keep(per_child, story.background())
                for table in CHILD_TABLES:
                    run.copy(table, rows.tables.get(table, ()))
                rows.clear()
                kept = audit.take()
                if kept:
                    first_id = _reserve_ids(run.connection, len(kept))
                    sealed, references = chain.seal(kept, first_id, sealing)
                    run.copy("audit_event", sealed)
                    run.copy("audit_event_entity", references)
                    written.update(len(kept))
                run.connection.commit()
                children.update(min(batch, last - start))
                gc.collect()
    finally:
        gc.enable()


def describe(loaded: Loaded) -> str:
    """What a run added, for the operator."""
    parts = [f"{table} {count:,}" for table, count in loaded.rows.items() if count]
    note = (
        f"; AuditEvents at audit scale {loaded.audit_scale:g} (not {loaded.scale:g}: "
        "a smaller share to fit the disk)"
        if loaded.audit_scale != loaded.scale
        else ""
    )
    return (
        f"loaded scale {loaded.scale:g} in {loaded.seconds / 60:.1f} min{note}\n"
        f"rows added: {', '.join(parts) or 'none'}"
    )


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.generate`."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--scale", type=float, required=True, help="fraction of the national figures (0.01 ... 1)"
    )
    parser.add_argument(
        "--audit-scale",
        type=float,
        default=None,
        help="fraction for AuditEvents (default: --scale)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("EXCHANGE_DATABASE_URL"),
        help="a migrated PostgreSQL database (default: EXCHANGE_DATABASE_URL)",
    )
    parser.add_argument(
        "--client-key",
        type=Path,
        default=DEFAULT_KEY,
        help=f"private JWK of every generated client, made if missing (default {DEFAULT_KEY})",
    )
    parser.add_argument(
        "--until",
        type=datetime.fromisoformat,
        default=None,
        help="the moment the data ends (default: now)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.database_url or not args.database_url.startswith("postgresql"):
        parser.error("--database-url must name a PostgreSQL database (COPY is PostgreSQL's)")
    if not 0 < args.scale <= 1 or (args.audit_scale is not None and not 0 <= args.audit_scale <= 1):
        parser.error("scales are fractions of the national figures, up to 1")
    key = client_key(args.client_key)
    loaded = generate(
        args.database_url,
        args.scale,
        args.audit_scale,
        jwks=public_jwks(key),
        until=args.until,
        seed=args.seed,
    )
    print(describe(loaded))
    print(
        "clients: bench-<ODS code in lower case> (bench-la001, bench-prv001, bench-icb01, ...), "
        f"private key in {args.client_key}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
