"""The mixed workload of `quality.md`: `exchange serve` with 2 workers on PostgreSQL, 32
concurrent clients spread over 8 OAuth clients (four of the LA, four of the provider; the
rate limit raised for the run), for 2 minutes: 60% searches `DocumentReference?patient=`,
20% DocumentReference reads, 15% Binary downloads (by the LA) and 5% uploads (the provider
posts a DocumentReference with 64 KiB inline). Target: no errors, p99 < 10x p50.

`python -m bench.mixed [--seconds N] [--database postgresql|sqlite]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path

from joserfc.jwk import ECKey

from bench.api_load import (
    CHILDREN,
    DOCUMENTS,
    advice_document,
    register_children,
    visible_documents,
)
from bench.database import scratch_schema
from bench.load import Call, run
from exchange.auth.client import request_token
from tests.cli_runner import exchange
from tests.conftest import ALL_SCOPES, world_document
from tests.factories import pdf_bytes
from tests.server import running_server

CLIENTS = 32
#: Of every 20 requests: 12 searches, 4 reads, 3 downloads, 1 upload.
MIX = (("search", 12), ("read", 4), ("download", 3), ("upload", 1))
LA_CLIENTS = tuple(f"mixed-la-{n}" for n in range(4))
PROVIDER_CLIENTS = tuple(f"mixed-provider-{n}" for n in range(4))


def _world(keys: dict[str, ECKey]) -> dict[str, object]:
    """The test world plus the eight OAuth clients of the run, each with its own key."""
    document = world_document()
    clients = document["clients"]
    assert isinstance(clients, list)
    for client_id, key in keys.items():
        clients.append(
            {
                "client_id": client_id,
                "organisation": "LA01" if client_id in LA_CLIENTS else "PRV01",
                "scopes": ALL_SCOPES,
                "jwks": {"keys": [key.as_dict(private=False)]},
            }
        )
    return document


def measure(database_url: str, seconds: float) -> str:
    """Set up, run the mix, and return the printed row."""
    keys = {
        client_id: ECKey.generate_key("P-256", parameters={"kid": client_id, "alg": "ES256"})
        for client_id in (*LA_CLIENTS, *PROVIDER_CLIENTS)
    }
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "var"
        world = Path(tmp) / "world.json"
        world.write_text(json.dumps(_world(keys)), encoding="utf-8")
        for args in (("init",), ("bootstrap", str(world))):
            result = exchange(*args, data_dir=data_dir, database_url=database_url)
            if result.returncode != 0:
                raise RuntimeError(f"exchange {args[0]} failed: {result.stderr}")
        env = {"EXCHANGE_RATE_LIMIT": "off", "EXCHANGE_TOKEN_RATE_LIMIT": "off"}
        with running_server(data_dir, database_url, workers=2, **env) as base:
            children = register_children(base)

            def bearer(client_id: str) -> dict[str, str]:
                token = request_token(client_id, keys[client_id], f"{base}/oauth2/token")
                return {
                    "Authorization": f"Bearer {token['access_token']}",
                    "Accept": "application/fhir+json",
                }

            headers = {client_id: bearer(client_id) for client_id in keys}
            provider_post = {
                client_id: {**headers[client_id], "Content-Type": "application/fhir+json"}
                for client_id in PROVIDER_CLIENTS
            }
            seed = [
                advice_document(*children[n % CHILDREN], pdf_bytes(64 * 1024, os.urandom(16)))
                for n in range(DOCUMENTS)
            ]
            share = -(-DOCUMENTS // 8)
            run(
                "seed",
                base,
                lambda slot: [
                    Call(
                        "POST",
                        "/fhir/DocumentReference",
                        provider_post[PROVIDER_CLIENTS[0]],
                        b,
                        201,
                    )
                    for b in seed[slot * share : (slot + 1) * share]
                ],
                8,
                count=DOCUMENTS,
            )
            documents, binaries = visible_documents(base, headers[LA_CLIENTS[0]], children)
            uploads = [
                advice_document(*children[n % CHILDREN], pdf_bytes(64 * 1024, os.urandom(16)))
                for n in range(64)
            ]

            def plan(slot: int) -> list[Call]:
                rng = random.Random(slot)
                la = headers[LA_CLIENTS[slot % 4]]
                provider = provider_post[PROVIDER_CLIENTS[slot % 4]]
                calls = []
                for _ in range(50):
                    for kind, weight in MIX:
                        for _ in range(weight):
                            if kind == "search":
                                patient = rng.choice(children)[0]
                                path = f"/fhir/DocumentReference?patient={patient}"
                                calls.append(Call("GET", path, la))
                            elif kind == "read":
                                path = f"/fhir/DocumentReference/{rng.choice(documents)}"
                                calls.append(Call("GET", path, la))
                            elif kind == "download":
                                path = f"/fhir/Binary/{rng.choice(binaries)}"
                                calls.append(Call("GET", path, {**la, "Accept": "application/pdf"}))
                            else:
                                body = rng.choice(uploads)
                                calls.append(
                                    Call("POST", "/fhir/DocumentReference", provider, body, 201)
                                )
                rng.shuffle(calls)
                return calls

            result = run("mixed workload", base, plan, CLIENTS, seconds)
    p50, p95, p99 = (result.percentile(p) for p in (50, 95, 99))
    verdict = "met" if result.errors == 0 and p99 < 10 * p50 else "MISSED"
    errors = f" ({result.first_error})" if result.errors else ""
    return (
        f"{'mixed workload, 32 clients / 8 OAuth clients':<48} {result.rate:>8.0f}/s  "
        f"p50 {p50:>6.1f}  p95 {p95:>6.1f}  p99 {p99:>6.1f} ms  p99/p50 {p99 / p50:>4.1f}  "
        f"errors {result.errors}{errors}  {verdict}"
    )


def main(seconds: float = 120.0, database: str = "postgresql") -> None:
    """Print the mixed-workload row."""
    print(f"-- mixed workload: {database}, 2 workers, {seconds:.0f} s", flush=True)
    if database == "postgresql":
        with scratch_schema() as url:
            print(measure(url, seconds), flush=True)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print(measure(f"sqlite:///{tmp}/bench.db", seconds), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    arguments = parser.parse_args()
    main(arguments.seconds, arguments.database)
