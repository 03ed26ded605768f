"""Document transfer benchmarks (`quality.md`), one run, through `exchange serve`, on the
file store and on S3 (SeaweedFS):

- upload (`POST /fhir/Binary`, 5 MiB and 100 MiB) vs writing the same bytes straight to the
  same store with the same durability (file: temp + fsync + rename; S3: boto3's multipart
  upload): target >= 0.5;
- download vs reading the same stored object directly: target >= 0.5; on the file store
  twice, from the page cache (the object just written) and from the disk (every blob's
  pages evicted before each read, the API's and the direct one's alike: a national store
  of terabytes is read from its disk);
- the server worker's peak RSS growth while uploading and downloading 1 GiB, on each store:
  < 64 MiB.

Each transfer runs five times, the API's and the direct operation's in turn; the medians
are compared.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from joserfc.jwk import ECKey

from bench.database import scratch_schema
from exchange.auth.client import request_token
from exchange.storage.blobs import FileBlobStore, new_blob_name
from tests.cli_runner import exchange
from tests.server import running_server
from tests.servers import S3Server, seaweedfs

MIB = 1024 * 1024
#: Runs of each transfer; the median is reported (one run moved by a third between runs).
REPEATS = 5


def _file(directory: Path, size: int) -> Path:
    path = directory / f"payload-{size}.pdf"
    with path.open("wb") as handle:
        handle.write(b"%PDF-1.7\n")
        remaining = size - 9 - len(b"\n%%EOF\n")
        while remaining > 0:
            piece = os.urandom(min(remaining, 8 * MIB))
            handle.write(piece)
            remaining -= len(piece)
        handle.write(b"\n%%EOF\n")
    return path


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def _rss(pid: int) -> int:
    """The process's resident memory now (0 once it has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Peak:
    """Samples a process's RSS in the background; `peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, _rss(pid), threading.Event()
        self.start = self.peak
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss(self.pid))


def _upload(base: str, token: str, path: Path, size: int) -> tuple[str, float]:
    """POST the file as a Binary from a client sending 1 MiB at a time (as the direct
    write reads it: `requests` would send 8 KiB blocks and measure itself); (id, MiB/s)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=900, blocksize=MIB)
    started = time.perf_counter()
    with path.open("rb") as body:
        connection.request(
            "POST",
            "/fhir/Binary",
            body=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/pdf",
                "Content-Length": str(size),
            },
        )
        response = connection.getresponse()
        answer = response.read()
    rate = size / MIB / (time.perf_counter() - started)
    connection.close()
    if response.status != 201:
        raise RuntimeError(f"upload: {response.status} {answer[:300]!r}")
    return str(json.loads(answer)["id"]), rate


def _download(base: str, token: str, binary_id: str, size: int) -> float:
    """GET the Binary's bytes, read 1 MiB at a time; MiB/s."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=900)
    started = time.perf_counter()
    connection.request(
        "GET",
        f"/fhir/Binary/{binary_id}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/pdf"},
    )
    response = connection.getresponse()
    received = 0
    while piece := response.read(MIB):
        received += len(piece)
    rate = size / MIB / (time.perf_counter() - started)
    connection.close()
    if response.status != 200 or received != size:
        raise RuntimeError(f"download: {response.status}, {received} of {size} bytes")
    return rate


class _Direct:
    """The same store written and read straight: the file store's own atomic write (temp,
    fsync, rename, fsync of the folder) and read; for S3, boto3's `upload_fileobj`
    (multipart, as the service) and a streamed `get_object`."""

    def __init__(self, work: Path, s3: S3Server | None, bucket: str | None) -> None:
        self.folder = work / "direct"
        self._files = FileBlobStore(self.folder)
        self._s3 = None if s3 is None else s3.client()
        self._bucket = bucket

    def write(self, path: Path, size: int) -> tuple[str, float]:
        name = new_blob_name()
        started = time.perf_counter()
        with path.open("rb") as body:
            if self._s3 is None:
                self._files.write(name, iter(lambda: body.read(MIB), b""))
            else:
                self._s3.upload_fileobj(body, self._bucket, name)
        return name, size / MIB / (time.perf_counter() - started)

    def read(self, name: str, size: int) -> float:
        started = time.perf_counter()
        if self._s3 is None:
            for _ in self._files.read(name):
                pass
        else:
            body = self._s3.get_object(Bucket=self._bucket, Key=name)["Body"]
            for _ in body.iter_chunks(MIB):
                pass
        return size / MIB / (time.perf_counter() - started)


def _evict(folder: Path) -> None:
    """Drop every file under `folder` from the page cache, so that its next read comes from
    the disk (`POSIX_FADV_DONTNEED`; a blob's pages are clean once its write has fsynced, so
    the kernel drops them all: `fincore` shows none left)."""
    for path in folder.rglob("*"):
        if path.is_file():
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


def _row(what: str, api: float, direct: float) -> None:
    print(f"{what:<48} {api:>14.0f} {direct:>14.0f} {api / direct:>7.2f} {'>=0.5':>7}")


def _store_env(s3: S3Server | None, bucket: str | None) -> dict[str, str]:
    if s3 is None or bucket is None:
        return {}
    return s3.exchange_env(bucket)


def _transfers(work: Path, key: ECKey, s3: S3Server | None) -> None:
    """The upload and download rows for one store (with `s3`, SeaweedFS; else files)."""
    store = "file" if s3 is None else "S3"
    bucket = None
    if s3 is not None:
        bucket = f"bench-{os.urandom(4).hex()}"
        s3.client().create_bucket(Bucket=bucket)
    with scratch_schema() as url:
        data_dir = work / f"var-{store}"
        exchange("init", data_dir=data_dir, database_url=url)
        exchange("bootstrap", str(work / "bench.json"), data_dir=data_dir, database_url=url)
        direct = _Direct(work, s3, bucket)
        env = {
            "EXCHANGE_MAX_DOCUMENT_BYTES": "2GiB",
            "EXCHANGE_RATE_LIMIT": "off",
            **_store_env(s3, bucket),
        }
        with running_server(data_dir, url, workers=1, **env) as base:
            token = request_token("bench", key, f"{base}/oauth2/token")["access_token"]
            # Warm up: the worker's first upload and download set up its store client
            # (for S3, a boto3 session: about a second), which is not what is measured.
            warm = _file(work, 64 * 1024)
            warm_id, _ = _upload(base, token, warm, 64 * 1024)
            _download(base, token, warm_id, 64 * 1024)
            direct.read(direct.write(warm, 64 * 1024)[0], 64 * 1024)
            warm.unlink()
            for size in (5 * MIB, 100 * MIB):
                payload = _file(work, size)
                # Each operation REPEATS times, the API's and the direct one taking turns
                # (so a disturbance of the machine falls on both); the medians compared.
                rates: dict[str, list[float]] = {key: [] for key in ("up", "write", "down", "read")}
                stored: list[tuple[str, str]] = []
                for _ in range(REPEATS):
                    binary_id, upload = _upload(base, token, payload, size)
                    name, baseline_write = direct.write(payload, size)
                    stored.append((binary_id, name))
                    rates["up"].append(upload)
                    rates["write"].append(baseline_write)
                    rates["down"].append(_download(base, token, binary_id, size))
                    rates["read"].append(direct.read(name, size))
                upload, baseline_write, download, baseline_read = (
                    statistics.median(rates[key]) for key in ("up", "write", "down", "read")
                )
                label = f"{size // MIB} MiB, {store} store"
                _row(f"upload {label} vs direct (MiB/s)", upload, baseline_write)
                _row(f"download {label} vs direct (MiB/s)", download, baseline_read)
                if s3 is None:
                    # The same objects again, each read from the disk: before each read,
                    # the API's store and the direct one are both evicted from the cache.
                    cold: dict[str, list[float]] = {"down": [], "read": []}
                    for binary_id, name in stored:
                        _evict(data_dir / "blobs")
                        cold["down"].append(_download(base, token, binary_id, size))
                        _evict(direct.folder)
                        cold["read"].append(direct.read(name, size))
                    _row(
                        f"download {label}, from disk (MiB/s)",
                        statistics.median(cold["down"]),
                        statistics.median(cold["read"]),
                    )
                payload.unlink()
            _memory(work, base, token, store)


def _memory(work: Path, base: str, token: str, store: str) -> None:
    """The server worker's peak RSS growth while moving 1 GiB each way through `store`
    (on S3, up to `s3.IN_FLIGHT` parts of 8 MiB are on their way at once)."""
    large = _file(work, 1024 * MIB)
    master = int(next(p for p in os.listdir("/proc") if p.isdigit() and _is_master(int(p), base)))
    worker = _worker_pid(master)
    before = _rss(worker)
    with Peak(worker) as peak:
        binary_id, _ = _upload(base, token, large, 1024 * MIB)
        _download(base, token, binary_id, 1024 * MIB)
    growth = (peak.peak - before) / MIB
    print(
        f"{'server RSS growth moving 1 GiB, ' + store + ' store (MiB)':<48} {growth:>14.1f} "
        f"{before / MIB:>14.1f} "
        f"{'':>7} {'<64':>7}"
    )
    large.unlink()


def main() -> None:
    """Print the document rows of the benchmark table: the file store, then S3
    (SeaweedFS, as the test suite runs it)."""
    key = ECKey.generate_key("P-256", parameters={"kid": "bench", "alg": "ES256"})
    document = {
        "organisations": [{"ods": "PRV01", "name": "Bench Trust", "role": "provider"}],
        "clients": [
            {
                "client_id": "bench",
                "organisation": "PRV01",
                "scopes": ["system/Binary.cr"],
                "jwks": {"keys": [key.as_dict(private=False)]},
            }
        ],
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "bench.json").write_text(json.dumps(document))
        _transfers(work, key, None)
        with seaweedfs(work / "seaweedfs") as s3:
            _transfers(work, key, s3)


def _is_master(pid: int, base: str) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    port = base.rsplit(":", 1)[1].encode()
    return (
        b"serve" in command
        and port in command
        and Path(f"/proc/{pid}/task/{pid}/children").read_text().strip() != ""
    )


if __name__ == "__main__":
    main()
