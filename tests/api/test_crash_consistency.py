"""Crash consistency (`quality.md`, Reliability): the server killed with SIGKILL while 50
uploads are arriving. After a restart every upload that got 201 downloads bit-identical,
no Binary holds half an upload, the audit chain verifies, and the sweeper removes what
the killed uploads left in the store (blobs no row names, temporary files)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from sqlalchemy import select

from exchange.auth.client import request_token
from exchange.db import Database
from exchange.documents.models import BinaryRow
from tests.cli_runner import exchange
from tests.conftest import world_client
from tests.scenario import PROVIDER
from tests.server import serving, world_data_dir

UPLOADS = 50
PIECE = 256 * 1024
PIECES = 8


@dataclass(frozen=True)
class _Upload:
    body: bytes
    #: The Binary's id if the server answered 201, else None (refused, or cut off).
    created: str | None


def _body(number: int) -> bytes:
    filler = os.urandom(PIECES * PIECE - 32)
    return b"%PDF-1.7\n" + f"{number:08d}".encode() + filler + b"\n%%EOF\n"


def _upload(base: str, token: str, number: int, killed: threading.Event) -> _Upload:
    """POST a 2 MiB PDF a piece at a time, a little slower than the network would, so
    that the kill finds uploads at every stage (not begun, half sent, committing, done)."""
    body = _body(number)
    time.sleep(number * 0.01)
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest("POST", "/fhir/Binary")
        connection.putheader("Authorization", f"Bearer {token}")
        connection.putheader("Content-Type", "application/pdf")
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        for start in range(0, len(body), PIECE):
            connection.send(body[start : start + PIECE])
            if not killed.is_set():
                time.sleep(0.02)
        response = connection.getresponse()
        answer = response.read()
    except (OSError, http.client.HTTPException):
        return _Upload(body, None)
    finally:
        connection.close()
    return _Upload(body, json.loads(answer)["id"] if response.status == 201 else None)


def _kill(master: int) -> None:
    """SIGKILL the gunicorn master and every worker at once (nothing runs its exit code)."""
    workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    for pid in [*map(int, workers), master]:
        os.kill(pid, signal.SIGKILL)


def _age(folder: Path, seconds: float) -> None:
    """Date every file under `folder` back by `seconds` (the sweeper's grace period
    passing, which a test cannot wait for)."""
    then = time.time() - seconds
    for path in folder.rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


def test_uploads_survive_a_kill_and_the_sweeper_removes_what_they_left(
    tmp_path: Path, fresh_database_url: str
) -> None:
    data_dir = world_data_dir(tmp_path, fresh_database_url)
    key = world_client(PROVIDER).key
    killed = threading.Event()
    with serving(data_dir, fresh_database_url, EXCHANGE_RATE_LIMIT="off") as (base, master):
        token = request_token(PROVIDER, key, f"{base}/oauth2/token")["access_token"]
        with ThreadPoolExecutor(UPLOADS) as pool:
            pending = [pool.submit(_upload, base, token, n, killed) for n in range(UPLOADS)]
            # Let some finish and many be under way, then kill.
            deadline = time.monotonic() + 30
            while sum(f.done() for f in pending) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            _kill(master.pid)
            killed.set()
            uploads = [future.result() for future in pending]
        master.wait(10)
    created = {u.created: u.body for u in uploads if u.created is not None}
    assert 5 <= len(created) < UPLOADS, "the kill came before or after every upload"
    store = data_dir / "blobs"

    with serving(data_dir, fresh_database_url) as (base, _):
        token = request_token(PROVIDER, key, f"{base}/oauth2/token")["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/pdf"}

        def download(binary_id: str) -> bytes:
            response = requests.get(f"{base}/fhir/Binary/{binary_id}", headers=headers, timeout=30)
            assert response.status_code == 200, response.text
            return response.content

        # Every 201 downloads bit-identical.
        for binary_id, body in created.items():
            assert download(binary_id) == body
        # Every Binary there is holds one whole upload: those that got 201, and any whose
        # row committed as the server died, before it could answer; none holds a part.
        database = Database(fresh_database_url)
        try:
            with database.read_session() as session:
                rows = {str(row.id): row.blob_name for row in session.scalars(select(BinaryRow))}
        finally:
            database.dispose()
        assert set(created) <= set(rows)
        sent = {hashlib.sha256(u.body).digest() for u in uploads}
        for binary_id in set(rows) - set(created):
            assert hashlib.sha256(download(binary_id)).digest() in sent

        verify = exchange("audit", "verify", data_dir=data_dir, database_url=fresh_database_url)
        assert verify.returncode == 0, verify.stdout + verify.stderr

        # What the killed uploads left: blobs no row names, and temporary files.
        orphans = {p.name for p in store.glob("??/*")} - set(rows.values())
        temporary = list((store / ".incoming").glob("*.tmp"))
        _age(store, 7200)
        sweep = exchange("sweep", data_dir=data_dir, database_url=fresh_database_url)
        assert sweep.returncode == 0, sweep.stderr
        expected = f"removed {len(orphans)} orphan blob(s) and 0 expired upload(s)"
        if temporary:
            expected += f", and what {len(temporary)} upload(s) that never finished left"
        assert sweep.stdout.startswith(expected), sweep.stdout
        assert {p.name for p in store.glob("??/*")} == set(rows.values())
        assert list((store / ".incoming").iterdir()) == []
        for binary_id, body in created.items():
            assert download(binary_id) == body
