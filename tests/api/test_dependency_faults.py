"""Dependency faults against the served API (`quality.md`, Reliability).

The S3 server (SeaweedFS) stopped part-way through an upload and while a download is
asked for: each answer is 503 with an OperationOutcome, nothing is half-written, readiness
names the part, and the service resumes by itself once the server is back, without a
restart. What the cut-off upload left in the bucket (a multipart upload never completed,
whose abort could not reach the server either) is what the sweeper clears.

The file store's disk full (a small tmpfs mounted over the blob folder, in a mount
namespace of the server's own): an upload is 503 and leaves nothing; readiness says the
store is full; reads go on (nothing needs space to be read); once space is freed, uploads
work again."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func
from sqlalchemy import select as sql_select

from exchange.auth.client import request_token
from exchange.db import Database
from exchange.documents.models import BinaryRow
from exchange.storage.s3 import S3BlobStore
from tests.conftest import world_client
from tests.scenario import PROVIDER
from tests.server import serving, world_data_dir
from tests.servers import SeaweedFS

MIB = 1024 * 1024


def _pdf(size: int) -> bytes:
    return b"%PDF-1.7\n" + os.urandom(size - 16) + b"\n%%EOF\n"


def _response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Read one HTTP response from `sock`: its status and JSON body."""
    sock.settimeout(60)
    data = b""
    while b"\r\n\r\n" not in data:
        received = sock.recv(65536)
        if not received:
            break
        data += received
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        received = sock.recv(65536)
        if not received:
            break
        body += received
    return int(lines[0].split(" ", 2)[1]), json.loads(body)


def _upload_cut_off(base: str, token: str, body: bytes, stop_at: int, stop: Any) -> tuple[int, Any]:
    """POST `body` a MiB at a time, calling `stop` once `stop_at` bytes are sent, and go on
    sending until the server answers; its status and OperationOutcome."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    try:
        sock.sendall(
            (
                f"POST /fhir/Binary HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/pdf\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
        )
        for start in range(0, len(body), MIB):
            if start >= stop_at and stop is not None:
                stop()
                stop = None
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(body[start : start + MIB])
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.01)
        return _response(sock)
    finally:
        sock.close()


def _download_cut_off(url: str, bearer: dict[str, str], stop: Any) -> bytes:
    """GET `url` a MiB at a time, calling `stop` after the first MiB; the bytes received
    before the stream ended (early, or with an error)."""
    received = bytearray()
    response = requests.get(
        url, headers={**bearer, "Accept": "application/pdf"}, stream=True, timeout=60
    )
    assert response.status_code == 200
    try:
        for piece in response.iter_content(MIB):
            received += piece
            if stop is not None:
                stop()
                stop = None
    except requests.RequestException:
        pass  # the connection ended before Content-Length: what a cut stream looks like
    finally:
        response.close()
    return bytes(received)


class _Provider:
    """The provider's client against a served API: uploads and downloads of Binaries."""

    def __init__(self, base: str) -> None:
        self.base = base
        token = request_token(PROVIDER, world_client(PROVIDER).key, f"{base}/oauth2/token")
        self.token = str(token["access_token"])
        self.bearer = {"Authorization": f"Bearer {self.token}"}

    def post(self, body: bytes) -> requests.Response:
        headers = {**self.bearer, "Content-Type": "application/pdf"}
        return requests.post(f"{self.base}/fhir/Binary", data=body, headers=headers, timeout=60)

    def get(self, url: str) -> requests.Response:
        return requests.get(url, headers={**self.bearer, "Accept": "application/pdf"}, timeout=60)


def _binaries(url: str) -> int:
    database = Database(url)
    try:
        with database.read_session() as session:
            return int(session.scalar(sql_select(func.count()).select_from(BinaryRow)) or 0)
    finally:
        database.dispose()


def test_s3_going_away_mid_upload_and_coming_back(tmp_path: Path, fresh_database_url: str) -> None:
    weed = SeaweedFS(tmp_path / "seaweedfs")
    weed.start()
    try:
        s3 = weed.server
        bucket = f"faults-{os.urandom(4).hex()}"
        s3.client().create_bucket(Bucket=bucket)
        data_dir = world_data_dir(tmp_path, fresh_database_url)
        environment = {**s3.exchange_env(bucket), "EXCHANGE_MAX_DOCUMENT_BYTES": "64MiB"}
        with serving(data_dir, fresh_database_url, **environment) as (base, _):
            provider = _Provider(base)
            stored_body = _pdf(3 * MIB)
            stored = provider.post(stored_body)
            assert stored.status_code == 201, stored.text
            binary = f"{base}/fhir/Binary/{stored.json()['id']}"
            before = _binaries(fresh_database_url)

            # Part-way through a 24 MiB upload (multipart: 8 MiB parts), the server stops.
            status, outcome = _upload_cut_off(
                base, provider.token, _pdf(24 * MIB), 12 * MIB, weed.stop
            )
            assert status == 503, outcome
            assert outcome["resourceType"] == "OperationOutcome"
            assert _binaries(fresh_database_url) == before  # nothing half-written

            ready = requests.get(f"{base}/readyz", timeout=60)
            assert ready.status_code == 503
            assert ready.json()["checks"]["document-store"] != "ok"
            refused = provider.get(binary)
            assert refused.status_code == 503
            assert refused.json()["resourceType"] == "OperationOutcome"

            weed.start()
            deadline = time.monotonic() + 60
            while requests.get(f"{base}/readyz", timeout=60).status_code != 200:
                assert time.monotonic() < deadline, "readiness did not come back"
                time.sleep(0.5)
            again = provider.get(binary)
            assert again.status_code == 200 and again.content == stored_body
            later = _pdf(10 * MIB)
            resumed = provider.post(later)
            assert resumed.status_code == 201, resumed.text

            # Part-way through a download's stream, the server stops: the 200 and its
            # headers are gone already, so the connection ends early; a client never
            # receives a body of the full length that is not the document.
            large = _pdf(48 * MIB)
            posted = provider.post(large)
            assert posted.status_code == 201, posted.text
            received = _download_cut_off(
                f"{base}/fhir/Binary/{posted.json()['id']}", provider.bearer, weed.stop
            )
            assert len(received) < len(large)
            assert large.startswith(received)
            weed.start()

        # The cut-off upload's parts: an open multipart upload, which the sweeper aborts
        # once past its grace period (here at once).
        store = S3BlobStore(bucket, client=s3.client())
        open_uploads = s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert len(open_uploads) == 1
        assert store.clear_abandoned(timedelta(0)) == 1
        assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    finally:
        weed.stop()


#: A mount namespace of its own: as root, no more; otherwise in a user namespace too.
_NAMESPACES = "-m" if os.geteuid() == 0 else "-rm"


def _can_mount_in_a_namespace(tmp_path: Path) -> bool:
    """Whether this machine lets a process mount a tmpfs in a mount namespace of its own
    (as root, or through an unprivileged user namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    tried = subprocess.run(
        [unshare, _NAMESPACES, "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$0"', str(probe)],
        capture_output=True,
        check=False,
    )
    return tried.returncode == 0


def _fill(path: Path) -> None:
    """Write zeros to `path` until its file system is full (ENOSPC)."""
    with path.open("wb", buffering=0) as handle:
        while True:
            handle.write(bytes(MIB))


def test_the_file_store_full_and_freed(tmp_path: Path, fresh_database_url: str) -> None:
    if not _can_mount_in_a_namespace(tmp_path):
        pytest.skip("this machine lets no process mount a tmpfs in a namespace of its own")
    data_dir = world_data_dir(tmp_path, fresh_database_url)
    blobs = data_dir / "blobs"
    # The server runs in a mount namespace where the blob folder is a 24 MiB tmpfs.
    mounted = [
        "unshare",
        _NAMESPACES,
        "sh",
        "-c",
        'mount -t tmpfs -o size=24m,mode=0700 tmpfs "$0" && exec "$@"',
        str(blobs),
    ]
    with serving(data_dir, fresh_database_url, prefix=mounted) as (base, master):
        inside = Path(f"/proc/{master.pid}/root{blobs}")  # the tmpfs, seen from here
        provider = _Provider(base)
        stored_body = _pdf(MIB)
        stored = provider.post(stored_body)
        assert stored.status_code == 201, stored.text
        binary = f"{base}/fhir/Binary/{stored.json()['id']}"
        assert requests.get(f"{base}/readyz", timeout=60).json()["checks"]["document-store"] == "ok"

        filler = inside / "filler"
        with pytest.raises(OSError, match="No space left on device"):
            _fill(filler)
        before = _binaries(fresh_database_url)
        refused = provider.post(_pdf(2 * MIB))
        assert refused.status_code == 503, refused.text
        assert refused.json()["resourceType"] == "OperationOutcome"
        assert _binaries(fresh_database_url) == before
        assert [p.name for p in (inside / ".incoming").iterdir()] == []  # nothing half-written
        ready = requests.get(f"{base}/readyz", timeout=60)
        assert ready.status_code == 503
        assert "full" in ready.json()["checks"]["document-store"]
        read = provider.get(binary)
        assert read.status_code == 200 and read.content == stored_body

        filler.unlink()  # space returns
        assert requests.get(f"{base}/readyz", timeout=60).status_code == 200
        later = _pdf(2 * MIB)
        resumed = provider.post(later)
        assert resumed.status_code == 201, resumed.text
        again = provider.get(f"{base}/fhir/Binary/{resumed.json()['id']}")
        assert again.content == later
