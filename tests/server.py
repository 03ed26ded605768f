"""Starting the real service (`exchange serve`, gunicorn) on a free loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.cli_runner import exchange
from tests.conftest import world_document
from tests.servers import free_ports, process_running, wait_until

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def running_server(
    data_dir: Path, database_url: str, workers: int = 2, **env: str
) -> Iterator[str]:
    """Run `exchange serve` until the block ends; yields its base URL (its output is in
    `exchange-serve.log` beside the data directory)."""
    with serving(data_dir, database_url, workers, **env) as (base, _):
        yield base


@contextmanager
def serving(
    data_dir: Path,
    database_url: str,
    workers: int = 2,
    *,
    prefix: Sequence[str] = (),
    **env: str,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`running_server`, yielding the gunicorn master's process too (to kill it); the
    command is run after `prefix` (a command that ends by running its arguments)."""
    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    environment |= {
        "EXCHANGE_DATA_DIR": str(data_dir),
        "EXCHANGE_DATABASE_URL": database_url,
        "EXCHANGE_PUBLIC_BASE_URL": base,
        **env,
    }
    args = [
        *prefix,
        sys.executable,
        "-m",
        "exchange",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with process_running(
        args, data_dir.parent / "exchange-serve.log", env=environment, cwd=data_dir.parent
    ) as process:
        wait_until(
            lambda: requests.get(f"{base}/healthz", timeout=1).status_code == 200,
            process,
            "exchange serve",
            30,
        )
        yield base, process


@contextmanager
def world_server(tmp_path: Path, database_url: str, workers: int = 2, **env: str) -> Iterator[str]:
    """`exchange init` + bootstrap of the test world (tests.conftest), then serve it (with
    extra `EXCHANGE_*` settings in `env`, e.g. a raised rate limit)."""
    with running_server(
        world_data_dir(tmp_path, database_url), database_url, workers=workers, **env
    ) as base:
        yield base


def world_data_dir(tmp_path: Path, database_url: str) -> Path:
    """`exchange init` and the bootstrap of the test world (tests.conftest) into
    `tmp_path/var` and `database_url`, as an operator would; the data directory."""
    data_dir = tmp_path / "var"
    world = tmp_path / "world.json"
    world.write_text(json.dumps(world_document()), encoding="utf-8")
    for args in (("init",), ("bootstrap", str(world))):
        result = exchange(*args, data_dir=data_dir, database_url=database_url)
        if result.returncode != 0:
            raise RuntimeError(f"exchange {args[0]} failed: {result.stderr}")
    return data_dir
