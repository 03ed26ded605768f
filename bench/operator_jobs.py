"""Operator jobs at scale, each in a real `exchange` process as an operator runs it:
`exchange keys rotate` (every live data key re-wrapped under a new KEK) and `exchange
sweep` (every blob in the store checked against the Binaries that name it). National
figures put 10,000,000 documents in the service (`quality.md`), each with its Binary,
its wrapped data key and its blob.

Printed, in one run, for N and 4N Binaries (each with an empty blob file in the file
store: the sweep reads names and ages, never content):

- the rotation's rate (the whole command, start-up included) against re-wrapping the
  same keys in memory (the provider's `rewrap` alone, no database): target >= 0.1, this
  project's own floor (no spec figure): each key is also read from and written back to
  the database, in batches; the rotation that loaded every row into one session ran at
  0.05-0.07 (bench/RESULTS.md);
- the sweep's rate against listing the same store alone (names and ages, no database):
  target >= 0.25, this project's own floor;
- each command's peak RSS: it must not grow with the number of documents (< 64 MiB from
  N to 4N), since national scale holds 10,000,000 of them;
- the longest write another process made while the sweep ran (a one-row update in a
  transaction of its own, every 20 ms): target < 100 ms, this project's own, since a
  server's workers run the sweep every hour while serving (on SQLite a sweep that listed
  the store inside its write transaction held every writer up for as long as it listed).

`python -m bench.operator_jobs [--database postgresql|sqlite] [--keys N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select, text

from bench.database import scratch_schema
from bench.documents import Peak
from exchange.agreements.models import Organisation
from exchange.crypto.keyring import load_keyring
from exchange.crypto.keys import LocalKeyProvider, WrappedKey
from exchange.db import Database, make_engine
from exchange.documents.models import BinaryRow
from exchange.storage.blobs import FileBlobStore
from tests.cli_runner import exchange

MIB = 1024 * 1024
BATCH = 5_000


def _binaries(url: str, data_dir: Path, count: int) -> list[tuple[str, WrappedKey]]:
    """`count` Binaries whose data keys are wrapped by the data dir's keyring, each with
    an empty blob file written two hours ago (past the sweep's grace period); (context,
    wrapped key) of each."""
    blobs = data_dir / "blobs"
    two_hours_ago = time.time() - 7200
    provider = LocalKeyProvider(load_keyring(data_dir / "keyring.json"))
    engine = make_engine(url)
    made = []
    now = datetime.now(UTC)
    with engine.begin() as connection:
        uploader = connection.scalar(select(Organisation.id).where(Organisation.ods == "PRV01"))
        for start in range(0, count, BATCH):
            rows = []
            for _ in range(min(BATCH, count - start)):
                binary_id, blob = uuid.uuid4(), uuid.uuid4().hex
                _, wrapped = provider.new_data_key(str(binary_id))
                made.append((str(binary_id), wrapped))
                path = blobs / blob[:2] / blob
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                path.touch()
                os.utime(path, (two_hours_ago, two_hours_ago))
                rows.append(
                    {
                        "id": binary_id,
                        "blob_name": blob,
                        "content_type": "application/pdf",
                        "size": 300_000,
                        "sha256": "0" * 64,
                        "sha1": bytes(20),
                        "wrapped_key": wrapped.wrapped,
                        "key_ref": wrapped.key_ref,
                        "uploader_id": uploader,
                        "created": now,
                        "document_id": None,
                        "destroyed": None,
                    }
                )
            connection.execute(insert(BinaryRow), rows)
    engine.dispose()
    return made


def _in_memory(data_dir: Path, keys: list[tuple[str, WrappedKey]]) -> float:
    """Keys re-wrapped a second by the provider alone (the baseline)."""
    provider = LocalKeyProvider(load_keyring(data_dir / "keyring.json"))
    started = time.perf_counter()
    for context, wrapped in keys:
        provider.rewrap(wrapped, context)
    return len(keys) / (time.perf_counter() - started)


def _listing(data_dir: Path) -> float:
    """Blobs a second listed from the file store with their ages (the sweep's baseline)."""
    store = FileBlobStore(data_dir / "blobs")
    started = time.perf_counter()
    count = sum(1 for name in store.names() if store.age(name) is not None)
    return count / (time.perf_counter() - started)


def _command(url: str, data_dir: Path, *command: str) -> tuple[float, float, str]:
    """Run `exchange COMMAND` in its own process; (seconds, peak RSS in MiB, output)."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")},
        "EXCHANGE_DATA_DIR": str(data_dir),
        "EXCHANGE_DATABASE_URL": url,
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "exchange", *command],
        env=environment,
        cwd=data_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    with Peak(process.pid) as peak:
        output, _ = process.communicate(timeout=3600)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {output}")
    return seconds, peak.peak / MIB, output.strip()


class _Writes:
    """Another process's writes while a command runs: a one-row update in a transaction of
    its own every 20 ms (through `Database`, so on SQLite it queues for the writer lock as
    the service's own writes do); `longest` is the longest one took, in ms."""

    def __init__(self, url: str) -> None:
        self.longest = 0.0
        self._database = Database(url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Writes:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._database.dispose()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            started = time.perf_counter()
            with self._database.transaction() as session:
                session.execute(text("UPDATE organisation SET name = name WHERE ods = 'PRV01'"))
            self.longest = max(self.longest, (time.perf_counter() - started) * 1000)


@dataclass(frozen=True)
class _Measured:
    rotation: float
    rewrap: float
    rotation_peak: float
    sweep: float
    listing: float
    sweep_peak: float
    longest_write: float


def _measure(url: str, work: Path, count: int) -> _Measured:
    """Both commands, and their baselines, over `count` Binaries and blobs."""
    data_dir = work / f"var-{count}"
    exchange("init", data_dir=data_dir, database_url=url)
    document = {"organisations": [{"ods": "PRV01", "name": "Bench Trust", "role": "provider"}]}
    (work / "bench.json").write_text(json.dumps(document))
    exchange("bootstrap", str(work / "bench.json"), data_dir=data_dir, database_url=url)
    keys = _binaries(url, data_dir, count)
    seconds, rotation_peak, output = _command(url, data_dir, "keys", "rotate")
    if f"{count} data key(s) re-wrapped" not in output:
        raise RuntimeError(f"keys rotate: {output}")
    rewrap = _in_memory(data_dir, keys)
    listing = _listing(data_dir)
    with _Writes(url) as writes:
        sweep_seconds, sweep_peak, output = _command(url, data_dir, "sweep")
    if not output.startswith("removed 0 orphan blob(s)"):
        raise RuntimeError(f"sweep: {output}")
    return _Measured(
        count / seconds,
        rewrap,
        rotation_peak,
        count / sweep_seconds,
        listing,
        sweep_peak,
        writes.longest,
    )


def _row(label: str, rate: float, baseline: float, target: str) -> str:
    return f"{label:<48} {rate:>14.0f} {baseline:>14.0f} {rate / baseline:>7.2f} {target:>7}"


def _growth(label: str, first: float, second: float) -> str:
    return f"{label:<48} {first:>14.1f} {second:>14.1f} {second - first:>7.1f} {'<64':>7}"


def main(argv: list[str] | None = None) -> None:
    """Print the operator-job rows for each database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("postgresql", "sqlite"), action="append")
    parser.add_argument("--keys", type=int, default=50_000, help="N (then 4N)")
    arguments = parser.parse_args(argv)
    for database in arguments.database or ["postgresql", "sqlite"]:
        runs = []
        for count in (arguments.keys, 4 * arguments.keys):
            with tempfile.TemporaryDirectory() as tmp:
                if database == "postgresql":
                    with scratch_schema() as url:
                        measured = _measure(url, Path(tmp), count)
                else:
                    measured = _measure(f"sqlite:///{tmp}/bench.db", Path(tmp), count)
            runs.append(measured)
            print(
                _row(
                    f"keys rotate, {count:,} keys, {database} (keys/s)",
                    measured.rotation,
                    measured.rewrap,
                    ">=0.1",
                ),
                _row(
                    f"sweep, {count:,} blobs, {database} (blobs/s)",
                    measured.sweep,
                    measured.listing,
                    ">=0.25",
                ),
                f"{'longest write during the sweep, ' + database + ' (ms)':<48} "
                f"{measured.longest_write:>14.1f} {'':>14} {'':>7} {'<100':>7}",
                sep="\n",
                flush=True,
            )
        small, large = runs
        print(
            _growth(
                f"keys rotate peak RSS, N to 4N, {database} (MiB)",
                small.rotation_peak,
                large.rotation_peak,
            ),
            _growth(
                f"sweep peak RSS, N to 4N, {database} (MiB)", small.sweep_peak, large.sweep_peak
            ),
            sep="\n",
            flush=True,
        )


if __name__ == "__main__":
    main()
