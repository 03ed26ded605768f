"""Starting the real service (`exchange serve`, gunicorn) on a free loopback port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody is listening on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_server(data_dir: Path, database_url: str, workers: int = 2, **env: str) -> Iterator[str]:
    """Run `exchange serve` until the block ends; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    environment |= {
        "EXCHANGE_DATA_DIR": str(data_dir),
        "EXCHANGE_DATABASE_URL": database_url,
        "EXCHANGE_PUBLIC_BASE_URL": base,
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "exchange", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        cwd=data_dir.parent,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        if process.stderr:
            process.stderr.close()


@contextmanager
def world_server(tmp_path: Path, database_url: str, workers: int = 2) -> Iterator[str]:
    """`exchange init` + bootstrap of the test world (tests.conftest), then serve it."""
    from tests.cli_runner import exchange
    from tests.conftest import world_document

    data_dir = tmp_path / "var"
    world = tmp_path / "world.json"
    world.write_text(json.dumps(world_document()), encoding="utf-8")
    for args in (("init",), ("bootstrap", str(world))):
        result = exchange(*args, data_dir=data_dir, database_url=database_url)
        if result.returncode != 0:
            raise RuntimeError(f"exchange {args[0]} failed: {result.stderr}")
    with running_server(data_dir, database_url, workers=workers) as base:
        yield base
