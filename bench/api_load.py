"""The API under load (issue 14), in one run per database, through `exchange serve` with 2
workers and 8 concurrent clients, with everything on as in production (tokens, consent,
agreements, audit, encryption): 200 children (Patient + Consent + Task, by the LA), 1,000
advice documents of 64 KiB inline (by the provider), then the LA reads, searches and
downloads them. Each rate is compared with `GET /fhir/metadata` measured in the same run,
just before that row (for half its time):

- the LA reads a DocumentReference: >= 0.2x metadata;
- the LA searches `DocumentReference?patient=`: >= 0.12x;
- the provider posts a DocumentReference with 64 KiB inline: >= 0.1x;
- p99 < 10x p50 for each;
- and, reported, the LA's Binary download and an authenticated `GET /fhir/Organization`.

`python -m bench.api_load [--database postgresql|sqlite] [--seconds N] [--repeat N]`: with
`--repeat`, the whole table N times (each run on a fresh world), then each row's median
ratio over the runs and their range: on a VM whose speed drifts, one run's ratio moved by
a tenth either way (bench/RESULTS.md), so a target is judged on the median.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import statistics
import tempfile
from pathlib import Path
from typing import Any

import requests

from bench.database import scratch_schema
from bench.load import Call, Result, profiled, run
from exchange.auth.client import request_token
from tests.conftest import world_client
from tests.factories import CB, consent_json, nhs_number, patient_json, pdf_bytes, task_json
from tests.server import world_server

CHILDREN = 200
DOCUMENTS = 1000
CLIENTS = 8
LA, PROVIDER = "la01-case-system", "prv01-epr"
#: label, target ratio to metadata (None: reported only).
ROWS: tuple[tuple[str, float | None], ...] = (
    ("LA reads a DocumentReference", 0.2),
    ("LA searches DocumentReference?patient=", 0.12),
    ("provider posts a DocumentReference, 64 KiB inline", 0.1),
    ("LA downloads the Binary", None),
    ("authenticated GET /fhir/Organization", None),
)


def _bearer(base: str, client_id: str) -> dict[str, str]:
    token = request_token(client_id, world_client(client_id).key, f"{base}/oauth2/token")
    return {"Authorization": f"Bearer {token['access_token']}", "Accept": "application/fhir+json"}


def register_children(base: str) -> list[tuple[str, str]]:
    """Register the children, each with a parent's consent and an advice request to PRV01;
    (patient id, task id) of each."""
    la = _bearer(base, LA)
    made = []
    with requests.Session() as session:
        session.headers.update(la)
        for n in range(CHILDREN):

            def created(path: str, resource: dict[str, Any]) -> str:
                response = session.post(f"{base}/fhir/{path}", json=resource, timeout=30)
                if response.status_code != 201:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
                return str(response.json()["id"])

            patient = created("Patient", patient_json(nhs_number(70000 + n), "2015-03-02"))
            created("Consent", consent_json(patient, "2026-10-01T10:00:00+01:00"))
            made.append((patient, created("Task", task_json(patient))))
    return made


def advice_document(patient: str, task: str, content: bytes) -> bytes:
    return json.dumps(
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "docStatus": "final",
            "type": {
                "coding": [{"system": f"{CB}/CodeSystem/document-type", "code": "health-advice"}]
            },
            "subject": {"reference": f"Patient/{patient}"},
            "context": {"related": [{"reference": f"Task/{task}"}]},
            "content": [
                {
                    "attachment": {
                        "contentType": "application/pdf",
                        "data": base64.b64encode(content).decode("ascii"),
                        "title": "Health advice",
                    }
                }
            ],
        }
    ).encode()


def _row(result: Result, baseline: Result, target: float | None) -> str:
    ratio = result.rate / baseline.rate
    p50, p95, p99 = (result.percentile(p) for p in (50, 95, 99))
    goal = f">={target}" if target is not None else ""
    flag = "" if target is None or ratio >= target else " MISSED"
    spread = "" if p99 < 10 * p50 else " p99>=10x p50"
    errors = f" errors={result.errors} ({result.first_error})" if result.errors else ""
    return (
        f"{result.label:<52} {result.rate:>8.0f}/s  p50 {p50:>6.1f}  p95 {p95:>6.1f}  "
        f"p99 {p99:>6.1f} ms  {ratio:>5.2f}x {goal:>6}{flag}{spread}{errors}\n"
        f"{'':<52} {result.cpu_per_request()}"
    )


#: Each row's (metadata baseline beside it, the row's own result), in ROWS' order.
Pairs = list[tuple[Result, Result]]


def measure(database_url: str, seconds: float, profile: Path | None = None) -> Pairs:
    """Set the world up in `database_url`, load it, and return each row with its baseline
    (with `profile`, a py-spy profile of the server per row in that folder)."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        world_server(
            Path(tmp),
            database_url,
            workers=2,
            EXCHANGE_RATE_LIMIT="off",
            EXCHANGE_TOKEN_RATE_LIMIT="off",
            EXCHANGE_LOG_LEVEL="WARNING",
        ) as base,
    ):
        children = register_children(base)
        la, provider = _bearer(base, LA), _bearer(base, PROVIDER)
        post = {**provider, "Content-Type": "application/fhir+json"}
        rng = random.Random(14)
        bodies = [
            advice_document(*children[n % CHILDREN], pdf_bytes(64 * 1024, os.urandom(16)))
            for n in range(DOCUMENTS)
        ]
        share = -(-DOCUMENTS // CLIENTS)

        def load(label: str, plan: Any, **how: Any) -> Result:
            name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40]
            with profiled(base, profile if name not in profiled_names else None, name):
                profiled_names.add(name)
                return run(label, base, plan, CLIENTS, **how)

        def spread(calls: list[Call]) -> Any:
            return lambda slot: rng.sample(calls, len(calls))

        profiled_names: set[str] = set()
        metadata_calls = spread(
            [Call("GET", "/fhir/metadata", {"Accept": "application/fhir+json"})]
        )

        def paired(label: str, plan: Any, **how: Any) -> tuple[Result, Result]:
            """`GET /fhir/metadata` for half a row's time just before the row, then the
            row: each row's ratio is to the baseline beside it (this VM's speed drifted by
            a fifth within one run, which moved a ratio measured against a baseline taken
            a minute earlier by as much)."""
            baseline = load("GET /fhir/metadata", metadata_calls, seconds=seconds / 2)
            return baseline, load(label, plan, **how)

        create = paired(
            ROWS[2][0],
            lambda slot: [
                Call("POST", "/fhir/DocumentReference", post, body, 201)
                for body in bodies[slot * share : (slot + 1) * share]
            ],
            count=DOCUMENTS,
        )
        documents, binaries = visible_documents(base, la, children)
        pairs = [
            paired(
                ROWS[0][0],
                spread([Call("GET", f"/fhir/DocumentReference/{d}", la) for d in documents]),
                seconds=seconds,
            ),
            paired(
                ROWS[1][0],
                spread(
                    [
                        Call("GET", f"/fhir/DocumentReference?patient={patient}", la)
                        for patient, _ in children
                    ]
                ),
                seconds=seconds,
            ),
            create,
            paired(
                ROWS[3][0],
                spread(
                    [
                        Call("GET", f"/fhir/Binary/{b}", {**la, "Accept": "application/pdf"})
                        for b in binaries
                    ]
                ),
                seconds=seconds,
            ),
            paired(
                ROWS[4][0],
                spread([Call("GET", "/fhir/Organization", la)]),
                seconds=seconds,
            ),
        ]
    return pairs


def printed(pairs: Pairs) -> list[str]:
    """The printed rows of one run: the baseline's mean and range, then each row."""
    rates = [baseline.rate for baseline, _ in pairs]
    first = pairs[0][0]
    lines = [
        f"{'GET /fhir/metadata (baseline, before each row)':<52} "
        f"{sum(rates) / len(rates):>8.0f}/s  p50 {first.percentile(50):>6.1f}  "
        f"p95 {first.percentile(95):>6.1f}  p99 {first.percentile(99):>6.1f} ms  "
        f"({min(rates):.0f}-{max(rates):.0f}/s)\n{'':<52} {first.cpu_per_request()}"
    ]
    lines += [
        _row(result, baseline, target)
        for (baseline, result), (_, target) in zip(pairs, ROWS, strict=True)
    ]
    return lines


def summary(runs: list[Pairs]) -> list[str]:
    """Each row's median ratio over the runs, with every run's ratio, its widest p99/p50
    and its median server CPU per request; a target met or missed on the median."""
    lines = [f"-- over {len(runs)} runs: median ratio (each run's), worst p99/p50"]
    for index, (label, target) in enumerate(ROWS):
        ratios = [result.rate / baseline.rate for baseline, result in (r[index] for r in runs)]
        spreads = [r[index][1].percentile(99) / r[index][1].percentile(50) for r in runs]
        median = statistics.median(ratios)
        goal = f">={target}" if target is not None else ""
        flag = "" if target is None or median >= target else " MISSED"
        each = ", ".join(f"{ratio:.2f}" for ratio in ratios)
        lines.append(
            f"{label:<52} {median:>6.3f}x ({each})  p99/p50 <= {max(spreads):.1f}  {goal}{flag}"
        )
    return lines


def visible_documents(
    base: str, la: dict[str, str], children: list[tuple[str, str]]
) -> tuple[list[str], list[str]]:
    """The ids of every document the LA can see, and of their Binaries."""
    documents, binaries = [], []
    with requests.Session() as session:
        session.headers.update(la)
        for patient, _ in children:
            bundle = session.get(
                f"{base}/fhir/DocumentReference", params={"patient": patient}, timeout=30
            ).json()
            for entry in bundle.get("entry", []):
                resource = entry["resource"]
                documents.append(resource["id"])
                binaries.append(resource["content"][0]["attachment"]["url"].split("/")[-1])
    if len(documents) != DOCUMENTS:
        raise RuntimeError(f"the LA sees {len(documents)} of {DOCUMENTS} documents")
    return documents, binaries


def main(
    databases: tuple[str, ...] = ("postgresql", "sqlite"),
    seconds: float = 10.0,
    profile: Path | None = None,
    repeat: int = 1,
) -> None:
    """Print the rows for each database (`repeat` runs, and their medians)."""
    for database in databases:
        print(f"-- API under load: {database}, 2 workers, {CLIENTS} clients, {seconds:.0f} s each")
        runs: list[Pairs] = []
        for attempt in range(repeat):
            where = profile / database if profile is not None and attempt == 0 else None
            if database == "postgresql":
                with scratch_schema() as url:
                    runs.append(measure(url, seconds, where))
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    runs.append(measure(f"sqlite:///{tmp}/bench.db", seconds, where))
            if repeat > 1:
                print(f"-- run {attempt + 1} of {repeat}")
            for line in printed(runs[-1]):
                print(line, flush=True)
        if repeat > 1:
            for line in summary(runs):
                print(line, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("postgresql", "sqlite"), action="append")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", type=Path, help="folder for py-spy profiles of each row")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the whole table")
    arguments = parser.parse_args()
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    main(
        tuple(arguments.database or ("postgresql", "sqlite")),
        arguments.seconds,
        arguments.profile,
        arguments.repeat,
    )
