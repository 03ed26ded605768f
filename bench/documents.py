"""Document transfer benchmarks (`quality.md`), one run, through `exchange serve`:

- upload (`POST /fhir/Binary`, 5 MiB and 100 MiB) vs writing the same bytes straight to the
  same file store with the same durability (temp + fsync + rename): target >= 0.5;
- download vs reading the same stored object directly: target >= 0.5;
- the server worker's peak RSS growth while uploading and downloading 1 GiB: < 64 MiB.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

import requests
from joserfc.jwk import ECKey

from bench.database import scratch_schema
from exchange.auth.client import request_token
from exchange.storage.blobs import FileBlobStore, new_blob_name
from tests.cli_runner import exchange
from tests.server import running_server

MIB = 1024 * 1024


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
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
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


def main() -> None:
    """Print the document rows of the benchmark table."""
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
    with scratch_schema() as url, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data_dir = work / "var"
        (work / "bench.json").write_text(json.dumps(document))
        exchange("init", data_dir=data_dir, database_url=url)
        exchange("bootstrap", str(work / "bench.json"), data_dir=data_dir, database_url=url)
        direct = FileBlobStore(work / "direct")
        env = {
            "EXCHANGE_MAX_DOCUMENT_BYTES": "2GiB",
            "EXCHANGE_RATE_LIMIT": "off",
            "EXCHANGE_LOG_LEVEL": "WARNING",
        }
        with running_server(data_dir, url, workers=1, **env) as base:
            token = request_token("bench", key, f"{base}/oauth2/token")["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            for size in (5 * MIB, 100 * MIB):
                payload = _file(work, size)
                started = time.perf_counter()
                with payload.open("rb") as body:
                    created = requests.post(
                        f"{base}/fhir/Binary",
                        data=body,
                        timeout=600,
                        headers={**auth, "Content-Type": "application/pdf"},
                    )
                upload = size / MIB / (time.perf_counter() - started)
                created.raise_for_status()
                binary_id = created.json()["id"]
                name = new_blob_name()
                started = time.perf_counter()
                with payload.open("rb") as body:
                    direct.write(name, iter(lambda: body.read(MIB), b""))
                baseline_write = size / MIB / (time.perf_counter() - started)
                started = time.perf_counter()
                with requests.get(
                    f"{base}/fhir/Binary/{binary_id}", headers=auth, stream=True, timeout=600
                ) as got:
                    got.raise_for_status()
                    received = sum(len(piece) for piece in got.iter_content(MIB))
                if received != size:
                    raise RuntimeError(f"downloaded {received} of {size} bytes")
                download = size / MIB / (time.perf_counter() - started)
                started = time.perf_counter()
                for _ in direct.read(name):
                    pass
                baseline_read = size / MIB / (time.perf_counter() - started)
                label = f"{size // MIB} MiB"
                print(
                    f"{'upload ' + label + ' vs direct write (MiB/s)':<48} {upload:>14.0f} "
                    f"{baseline_write:>14.0f} "
                    f"{upload / baseline_write:>7.2f} {'>=0.5':>7}"
                )
                print(
                    f"{'download ' + label + ' vs direct read (MiB/s)':<48} {download:>14.0f} "
                    f"{baseline_read:>14.0f} "
                    f"{download / baseline_read:>7.2f} {'>=0.5':>7}"
                )
                payload.unlink()
            large = _file(work, 1024 * MIB)
            master = int(
                next(p for p in os.listdir("/proc") if p.isdigit() and _is_master(int(p), base))
            )
            worker = _worker_pid(master)
            before = _rss(worker)
            with Peak(worker) as peak:
                with large.open("rb") as body:
                    created = requests.post(
                        f"{base}/fhir/Binary",
                        data=body,
                        timeout=900,
                        headers={**auth, "Content-Type": "application/pdf"},
                    )
                with requests.get(
                    f"{base}/fhir/Binary/{created.json()['id']}",
                    headers=auth,
                    stream=True,
                    timeout=900,
                ) as got:
                    for _ in got.iter_content(MIB):
                        pass
            growth = (peak.peak - before) / MIB
            print(
                f"{'server RSS growth moving 1 GiB (MiB)':<48} {growth:>14.1f} "
                f"{before / MIB:>14.1f} "
                f"{'':>7} {'<64':>7}"
            )


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
