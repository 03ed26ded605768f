"""Preparing the demo: key pairs for the demo clients and the bootstrap that registers them.

Keys are generated once and kept under `<data dir>/demo/` (private keys mode 0600), so
running the demo again keeps working tokens; the bootstrap's public keys are replaced with
the generated ones (the example's `jwks_uri` client gets an inline key set as well).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey

from exchange.crypto.keyring import write_secret_file


@dataclass(frozen=True)
class DemoSet:
    """The demo bootstrap document and where each client's private key is."""

    bootstrap: dict[str, Any]
    private_keys: dict[str, Path]
    directory: Path


def demo_bootstrap_template() -> dict[str, Any]:
    """The packaged demo bootstrap (the spec's example file)."""
    text = resources.files("exchange.demo").joinpath("bootstrap.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def _client_key(directory: Path, client_id: str) -> ECKey:
    path = directory / f"{client_id}.private.jwk.json"
    if path.exists():
        return ECKey.import_key(json.loads(path.read_text(encoding="utf-8")))
    key = ECKey.generate_key(
        "P-256", parameters={"kid": f"{client_id}-demo", "use": "sig", "alg": "ES256"}
    )
    write_secret_file(path, json.dumps(key.as_dict(private=True), indent=2).encode("utf-8"))
    return key


def prepare_demo(data_dir: Path) -> DemoSet:
    """Generate (or reuse) the demo clients' keys and build the demo bootstrap."""
    directory = data_dir / "demo"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    document = demo_bootstrap_template()
    # The story needs PRV02 to act as well: a client like PRV01's.
    (provider,) = [c for c in document["clients"] if c["client_id"] == "prv01-epr"]
    document["clients"].append({**provider, "client_id": "prv02-epr", "organisation": "PRV02"})
    private_keys: dict[str, Path] = {}
    for client in document["clients"]:
        key = _client_key(directory, client["client_id"])
        client.pop("jwks_uri", None)
        client["jwks"] = {"keys": [key.as_dict(private=False)]}
        private_keys[client["client_id"]] = directory / f"{client['client_id']}.private.jwk.json"
    (directory / "bootstrap.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    return DemoSet(document, private_keys, directory)
