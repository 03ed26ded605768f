"""Regression tests for attacks that only a real server shows: chunked bodies against the
workers' memory, forwarded headers through gunicorn, a slow `jwks_uri` host holding the
SQLite write lock, the warning for a server exposed without its proxy, and a flood of
forged tokens, each refusal audited."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from exchange.auth.client import request_token
from tests.api.served_world import gets_at_once
from tests.cli_runner import exchange
from tests.conftest import world_client, world_document
from tests.oauth import public_jwks, signing_key
from tests.server import running_server, world_server
from tests.servers import free_ports

MIB = 1024 * 1024


def _server_pids(port: int) -> list[int]:
    """The gunicorn master and workers serving on `port`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in arguments and str(port).encode() in arguments:
            pids.append(int(entry.name))
    return pids


def _rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def _send_chunked(base: str, path: str, headers: dict[str, str], total: int) -> tuple[int, int]:
    """POST `total` bytes with Transfer-Encoding: chunked, stopping once the server answers;
    (status, bytes sent)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    piece = b"a" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = 0
    answer = b""
    try:
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        sock.settimeout(30)
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    finally:
        sock.close()
    return int(answer.split(b" ", 2)[1]), sent


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("attacks-served")
    with world_server(directory, f"sqlite:///{directory / 'exchange.db'}", workers=1) as base:
        yield base


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/oauth2/token", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("/fhir/Patient", {"Content-Type": "application/fhir+json"}),
    ],
    ids=["token-endpoint-before-authentication", "fhir-with-a-token"],
)
def test_a_chunked_200_mib_body_is_cut_off_without_growing_the_worker(
    served: str, path: str, headers: dict[str, str]
) -> None:
    if path.startswith("/fhir"):
        token = request_token(
            "la01-case-system", world_client("la01-case-system").key, f"{served}/oauth2/token"
        )
        headers = {**headers, "Authorization": f"Bearer {token['access_token']}"}
    pids = _server_pids(int(served.rsplit(":", 1)[1]))
    before = _rss(pids)
    status, sent = _send_chunked(served, path, headers, 200 * MIB)
    assert status == 413
    assert sent < 64 * MIB  # answered long before the client finished
    assert _rss(pids) - before < 32 * MIB
    assert requests.get(f"{served}/healthz", timeout=5).status_code == 200


def test_forwarded_headers_are_ignored_without_proxy_hops(served: str) -> None:
    token = request_token(
        "la01-case-system", world_client("la01-case-system").key, f"{served}/oauth2/token"
    )
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
        "birthDate": "2015-03-02",
    }
    response = requests.post(
        f"{served}/fhir/Patient",
        json=body,
        timeout=10,
        headers={
            "Authorization": f"Bearer {token['access_token']}",
            "Host": "evil.example:666",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-For": "203.0.113.9",
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["Location"].startswith(f"{served}/fhir/Patient/")
    assert "Strict-Transport-Security" not in response.headers  # gunicorn did not believe "https"


@pytest.mark.parametrize(
    ("host", "env", "warned"),
    [
        ("0.0.0.0", {}, True),  # noqa: S104 - the warning for a non-loopback bind is under test
        ("127.0.0.1", {}, False),
        ("0.0.0.0", {"EXCHANGE_PROXY_HOPS": "1"}, False),  # noqa: S104 - as above, behind a proxy
    ],
)
def test_serving_beyond_loopback_without_a_proxy_warns(
    tmp_path: Path, host: str, env: dict[str, str], warned: bool
) -> None:
    data_dir = tmp_path / "var"
    assert exchange("init", data_dir=data_dir).returncode == 0
    port = free_ports(1)[0]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    environment |= {"EXCHANGE_DATA_DIR": str(data_dir), **env}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exchange",
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    assert ("must sit behind a reverse proxy" in errors) is warned


class SlowJwksHost:
    """A client's `jwks_uri` host that answers only after `delay` seconds."""

    def __init__(self, jwks: dict[str, Any], delay: float) -> None:
        self.asked = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.asked.set()
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(jwks).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_slow_jwks_host_does_not_hold_other_clients_on_sqlite(tmp_path: Path) -> None:
    key = signing_key("ES256", "slow-remote")
    host = SlowJwksHost(public_jwks(key), delay=2.5)
    document = world_document()
    document["clients"].append(
        {
            "client_id": "icb01-slow-remote",
            "organisation": "ICB01",
            "scopes": ["system/Organization.rs"],
            "jwks_uri": host.url,
        }
    )
    data_dir = tmp_path / "var"
    world = tmp_path / "world.json"
    world.write_text(json.dumps(document), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'exchange.db'}"
    for args in (("init",), ("bootstrap", str(world))):
        assert exchange(*args, data_dir=data_dir, database_url=url).returncode == 0
    try:
        with running_server(data_dir, url, workers=2) as base:
            slow: dict[str, Any] = {}
            thread = threading.Thread(
                target=lambda: slow.update(
                    request_token("icb01-slow-remote", key, f"{base}/oauth2/token")
                )
            )
            thread.start()
            assert host.asked.wait(10)
            # While the slow host keeps that request waiting, another client gets its token.
            fast = request_token(
                "la01-case-system", world_client("la01-case-system").key, f"{base}/oauth2/token"
            )
            assert "access_token" in fast
            assert thread.is_alive()
            thread.join(30)
            assert "access_token" in slow  # the slow host answered within the deadline
    finally:
        host.server.shutdown()
        host.server.server_close()


def test_forged_tokens_sent_at_once_are_each_refused_with_their_own_audit_record(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """A flood of forged bearer tokens from eight clients across two workers: every one is
    refused, and every refusal has its own audit record, committed before the 401 left
    (on SQLite the records of a worker's refusals commit together: `db.GroupCommit`)."""
    with world_server(tmp_path, fresh_database_url, workers=2) as base:
        refusals = gets_at_once(
            base,
            fresh_database_url,
            f"/fhir/DocumentReference/{uuid.uuid4()}",
            {"Authorization": "Bearer forged.{request_id}"},
        )
    assert {refusal.status for refusal in refusals} == {401}
    for refusal in refusals:
        # Exactly one record, its own, committed when the 401 arrived.
        (row,) = refusal.records
        assert row.outcome != "0" and row.agent_client_id is None
        assert "access token is not valid" in json.loads(row.payload)["outcomeDesc"]
