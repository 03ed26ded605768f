"""Searching at national scale (`quality.md`): p95 latency of

- `GET /fhir/DocumentReference?patient.identifier=https://fhir.nhs.uk/Id/nhs-number|<n>`, an
  LA looking for the advice on a child it asked about, and
- `GET /fhir/Task?owner=<system>|<ODS>&status=<s>`, a provider's work list,

through `exchange serve --workers 2` with 8 concurrent clients for a fixed time, over the
generated data (`bench.generate`) at 1% of the national figures and again after growing the
same schema to 10% (AuditEvents stay at 1%'s count: a tenth of the others' scale at 10%,
to fit this machine's disk). Target: p95 grows < 1.5x from 1% to 10% (index-backed).

The callers really have access: the four largest LAs search for children they requested
advice for whose advice the read decision lets them see (each checked through the API
first), and the four busiest providers list their Tasks by each status they hold (the p95
of open work lists and of closed histories is printed apart). The same organisations are
asked at both scales; at 10% they simply have ten times the children and requests.

A whole run takes about 35 minutes: 10 to load 1%, 7 to grow to 10%, a minute per search
and scale; `--no-ten` stops after 1%. It needs about 20 GiB free on the database's disk
(it checks `df` before growing). The machine is shared, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import psycopg
import requests
from joserfc.jwk import ECKey

from bench.database import scratch_schema
from bench.generate import conninfo, describe, generate, public_jwks
from exchange.auth.client import request_token
from tests.cli_runner import exchange
from tests.server import running_server

THREADS: Final = 8
DURATION: Final = 60.0
WARM_UP: Final = 5.0
ORGANISATIONS: Final = 4
CHILDREN_PER_LA: Final = 50
NHS_NUMBER: Final = "https://fhir.nhs.uk/Id/nhs-number"
ODS: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
#: What the 10% data needs on disk beyond the 1% (measured: about 9 GiB), with room to spare.
TEN_PERCENT_BYTES: Final = 15 * 1024**3


@dataclass(frozen=True)
class Latencies:
    """What one query's load run measured (`p95_by_group`: p95 of each group of queries)."""

    p50: float
    p95: float
    p99: float
    per_second: float
    requests: int
    mean_total: float
    p95_by_group: dict[str, float]


@dataclass(frozen=True)
class Query:
    """A search as a client sends it: path with query string, and the client sending it;
    `group` says which kind of search it is, for a separate p95."""

    path: str
    client_id: str
    group: str = ""


#: A work list of open requests, or the history of closed ones.
OPEN_STATUSES: Final = ("requested", "accepted", "in-progress")


def _las(connection: psycopg.Connection[Any]) -> list[str]:
    """The LAs with the most children."""
    rows = connection.execute(
        "SELECT o.ods FROM patient_registration r JOIN organisation o ON o.id = r.organisation_id "
        "GROUP BY o.ods ORDER BY count(*) DESC, o.ods LIMIT %s",
        (ORGANISATIONS,),
    ).fetchall()
    return [ods for (ods,) in rows]


def _providers(connection: psycopg.Connection[Any]) -> list[str]:
    """The providers with the most requests."""
    rows = connection.execute(
        "SELECT o.ods FROM task t JOIN organisation o ON o.id = t.owner_id "
        "WHERE o.role = 'provider' GROUP BY o.ods ORDER BY count(*) DESC, o.ods LIMIT %s",
        (ORGANISATIONS,),
    ).fetchall()
    return [ods for (ods,) in rows]


def _candidates(connection: psycopg.Connection[Any], las: list[str]) -> list[Query]:
    """Children each LA asked advice for that has arrived, a random few per LA."""
    queries = []
    for la in las:
        rows = connection.execute(
            "SELECT DISTINCT p.nhs_number FROM document_reference d "
            "JOIN task t ON t.id = d.task_id JOIN organisation o ON o.id = t.requester_id "
            "JOIN patient p ON p.id = d.patient_id "
            "WHERE o.ods = %s AND d.doc_type = 'health-advice'",
            (la,),
        ).fetchall()
        numbers = sorted(number for (number,) in rows)
        for number in random.Random(la).sample(numbers, min(len(numbers), 3 * CHILDREN_PER_LA)):
            query = urlencode({"patient.identifier": f"{NHS_NUMBER}|{number}"})
            queries.append(Query(f"/fhir/DocumentReference?{query}", f"bench-{la.lower()}"))
    return queries


def _work_lists(connection: psycopg.Connection[Any], providers: list[str]) -> list[Query]:
    """Each provider's work list by every status it has requests in."""
    queries = []
    for provider in providers:
        rows = connection.execute(
            "SELECT DISTINCT t.status FROM task t JOIN organisation o ON o.id = t.owner_id "
            "WHERE o.ods = %s ORDER BY 1",
            (provider,),
        ).fetchall()
        for (status,) in rows:
            query = urlencode({"owner": f"{ODS}|{provider}", "status": status})
            group = "open" if status in OPEN_STATUSES else "closed"
            queries.append(Query(f"/fhir/Task?{query}", f"bench-{provider.lower()}", group))
    return queries


class Tokens:
    """Access tokens of the generated clients, renewed before they expire (300 s)."""

    def __init__(self, base: str, key: ECKey) -> None:
        self.base, self.key = base, key
        self.issued: dict[str, tuple[float, str]] = {}

    def headers(self, client_id: str) -> dict[str, str]:
        """The Authorization header for `client_id`."""
        issued = self.issued.get(client_id)
        if issued is None or time.monotonic() - issued[0] > 200:
            answer = request_token(client_id, self.key, f"{self.base}/oauth2/token")
            issued = (time.monotonic(), str(answer["access_token"]))
            self.issued[client_id] = issued
        return {"Authorization": f"Bearer {issued[1]}"}


def _checked(base: str, tokens: Tokens, queries: list[Query], keep: int) -> list[Query]:
    """The queries that find something for their caller, `keep` per caller at most."""
    kept: dict[str, list[Query]] = {}
    with requests.Session() as session:
        for query in queries:
            if len(kept.get(query.client_id, [])) >= keep:
                continue
            answer = session.get(
                base + query.path, headers=tokens.headers(query.client_id), timeout=30
            )
            answer.raise_for_status()
            if answer.json()["total"] > 0:
                kept.setdefault(query.client_id, []).append(query)
    return [query for group in kept.values() for query in group]


def _load(base: str, tokens: Tokens, queries: list[Query], seconds: float) -> Latencies:
    """Send `queries` round-robin from THREADS clients for `seconds`; their latencies."""
    for client_id in {query.client_id for query in queries}:
        tokens.headers(client_id)  # renewed here, never while the clock runs
    latencies: list[list[tuple[str, float]]] = [[] for _ in range(THREADS)]
    totals: list[list[int]] = [[] for _ in range(THREADS)]
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def run(slot: int) -> None:
        rng = random.Random(slot)
        with requests.Session() as session:
            while time.monotonic() < stop:
                query = rng.choice(queries)
                headers = tokens.issued[query.client_id][1]
                started = time.perf_counter()
                answer = session.get(
                    base + query.path, headers={"Authorization": f"Bearer {headers}"}, timeout=60
                )
                latencies[slot].append((query.group, time.perf_counter() - started))
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code} {query.path}")
                    return
                totals[slot].append(int(answer.json()["total"]))

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"the load run failed: {errors[0]}")
    every = [(group, latency * 1000) for slot in latencies for group, latency in slot]
    cuts = statistics.quantiles([latency for _, latency in every], n=100)
    groups = {group for group, _ in every if group}
    by_group = {
        group: statistics.quantiles([ms for g, ms in every if g == group], n=100)[94]
        for group in sorted(groups)
    }
    found = [total for slot in totals for total in slot]
    return Latencies(
        cuts[49],
        cuts[94],
        cuts[98],
        len(every) / seconds,
        len(every),
        statistics.mean(found),
        by_group,
    )


def measure(
    url: str, data_dir: Path, key: ECKey, las: list[str], providers: list[str], seconds: float
) -> dict[str, Latencies]:
    """Both searches' latencies through `exchange serve --workers 2`."""
    with psycopg.connect(conninfo(url)) as connection:
        documents = _candidates(connection, las)
        work_lists = _work_lists(connection, providers)
    env = {
        "EXCHANGE_RATE_LIMIT": "off",
        "EXCHANGE_TOKEN_RATE_LIMIT": "off",
        "EXCHANGE_LOG_LEVEL": "WARNING",
    }
    results = {}
    with running_server(data_dir, url, workers=2, **env) as base:
        tokens = Tokens(base, key)
        time.sleep(WARM_UP)  # the first housekeeping pass (an hourly sweep) runs at start
        for name, queries in (("documents", documents), ("tasks", work_lists)):
            chosen = _checked(base, tokens, queries, CHILDREN_PER_LA if name == "documents" else 99)
            if not chosen:
                raise RuntimeError(f"no {name} search finds anything: is the data generated?")
            _load(base, tokens, chosen, WARM_UP)
            results[name] = _load(base, tokens, chosen, seconds)
            print(
                f"  {name}: {len(chosen)} queries by {len({q.client_id for q in chosen})} "
                f"clients, {results[name].mean_total:.1f} matches on average",
                flush=True,
            )
    return results


def _schema_bytes(url: str) -> int:
    with psycopg.connect(conninfo(url)) as connection:
        row = connection.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        ).fetchone()
    return int(row[0] or 0) if row else 0


def _df() -> str:
    return subprocess.run(
        ["df", "-h", "/work"], capture_output=True, text=True, check=False
    ).stdout.strip()


def _row(label: str, measured: float, baseline: float, target: str) -> str:
    ratio = measured / baseline if baseline else float("nan")
    return f"{label:<48} {measured:>14.1f} {baseline:>14.1f} {ratio:>7.2f} {target:>7}"


def main(argv: list[str] | None = None) -> None:
    """Print the national-scale search rows of the benchmark table."""
    parser = argparse.ArgumentParser(prog="python -m bench.national", description=__doc__)
    parser.add_argument("--no-ten", action="store_true", help="stop after the 1%% run")
    parser.add_argument("--duration", type=float, default=DURATION, help="seconds per search")
    parser.add_argument("--small", type=float, default=0.01, help="the first scale (1%%)")
    parser.add_argument("--large", type=float, default=0.1, help="the grown scale (10%%)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    key = ECKey.generate_key("P-256", parameters={"kid": "bench-national", "alg": "ES256"})
    with scratch_schema() as url, tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "var"
        exchange("init", data_dir=data_dir, database_url=url)
        print(_df(), flush=True)
        loaded = generate(url, args.small, args.small, jwks=public_jwks(key))
        print(describe(loaded), flush=True)
        with psycopg.connect(conninfo(url)) as connection:
            las, providers = _las(connection), _providers(connection)
        print(f"callers: LAs {', '.join(las)}; providers {', '.join(providers)}", flush=True)
        one = measure(url, data_dir, key, las, providers, args.duration)
        sizes = {"1%": _schema_bytes(url)}
        loads = {"1%": loaded.seconds}
        ten: dict[str, Latencies] = {}
        free = shutil.disk_usage("/work").free
        print(_df(), flush=True)
        if args.no_ten:
            print("10%: skipped (--no-ten)")
        elif free < TEN_PERCENT_BYTES:
            print(f"10%: skipped, {free / 1024**3:.0f} GiB free on /work is too little")
        else:
            grown = generate(url, args.large, args.small, jwks=public_jwks(key))
            print(describe(grown), flush=True)
            loads["10%"] = grown.seconds
            sizes["10%"] = _schema_bytes(url)
            print(_df(), flush=True)
            ten = measure(url, data_dir, key, las, providers, args.duration)
    print()
    for scale, seconds in loads.items():
        how = "load to 1%" if scale == "1%" else "grow to 10%"
        print(f"{how}: {seconds / 60:.1f} min; schema {sizes[scale] / 1024**3:.1f} GiB")
    for name, label in (
        ("documents", "DocumentReference search p95"),
        ("tasks", "Task owner+status search p95"),
    ):
        runs = {"1%": one[name], **({"10%": ten[name]} if name in ten else {})}
        for scale, run in runs.items():
            groups = "".join(
                f", p95 of {group} {p95:.1f}" for group, p95 in run.p95_by_group.items()
            )
            print(
                f"  {name} at {scale}: p50 {run.p50:.1f} ms, p95 {run.p95:.1f}, "
                f"p99 {run.p99:.1f}{groups}; {run.per_second:.0f} req/s, "
                f"{run.mean_total:.0f} matches on average"
            )
        if "10%" in runs:
            print(_row(f"{label} 10% vs 1% (ms)", runs["10%"].p95, runs["1%"].p95, "<1.5"))


if __name__ == "__main__":
    main()
