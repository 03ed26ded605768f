"""Token endpoint throughput (private_key_jwt, ES256, replay check and audit) against a bare
`GET /healthz`, both through `exchange serve` with 2 workers, in one run (target >= 0.2)."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import requests
from joserfc.jwk import ECKey

from bench.database import scratch_schema
from exchange.auth.client import ASSERTION_TYPE, client_assertion
from tests.cli_runner import exchange
from tests.server import running_server

DURATION = 8.0
THREADS = 8


def _load(fire: object) -> float:
    stop = time.monotonic() + DURATION
    counts = [0] * THREADS

    def run(slot: int) -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            fire(session)  # type: ignore[operator]
            counts[slot] += 1

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / DURATION


def main() -> None:
    """Print the token-endpoint row of the benchmark table."""
    key = ECKey.generate_key("P-256", parameters={"kid": "bench", "alg": "ES256"})
    document = {
        "organisations": [{"ods": "LA01", "name": "Bench Council", "role": "la"}],
        "clients": [
            {
                "client_id": "bench",
                "organisation": "LA01",
                "scopes": ["system/Organization.rs"],
                "jwks": {"keys": [key.as_dict(private=False)]},
            }
        ],
    }
    with scratch_schema() as url, tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "var"
        bootstrap = Path(tmp) / "bench.json"
        bootstrap.write_text(json.dumps(document))
        exchange("init", data_dir=data_dir, database_url=url)
        exchange("bootstrap", str(bootstrap), data_dir=data_dir, database_url=url)
        with running_server(
            data_dir, url, workers=2, EXCHANGE_TOKEN_RATE_LIMIT="off", EXCHANGE_LOG_LEVEL="WARNING"
        ) as base:
            token_url = f"{base}/oauth2/token"

            def health(session: requests.Session) -> None:
                assert session.get(f"{base}/healthz", timeout=10).status_code == 200

            def token(session: requests.Session) -> None:
                form = {
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": client_assertion("bench", key, token_url),
                }
                assert session.post(token_url, data=form, timeout=10).status_code == 200

            baseline = _load(health)
            measured = _load(token)
    print(
        f"{'token endpoint ES256 vs GET /healthz (req/s)':<48} {measured:>14.0f} {baseline:>14.0f} "
        f"{measured / baseline:>7.2f} {'>=0.2':>7}"
    )


if __name__ == "__main__":
    main()
