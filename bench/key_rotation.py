"""`exchange keys rotate` at scale: every live data key re-wrapped under a new KEK, in a
real `exchange` process, as an operator runs it. National figures put 10,000,000
documents in the service (`quality.md`), each Binary's data key wrapped.

Printed, in one run, for N and 4N Binaries:

- the rotation's rate (the whole command, start-up included) against re-wrapping the
  same keys in memory (the provider's `rewrap` alone, no database): target >= 0.1, this
  project's own floor (no spec figure): each key is also read from and written back to
  the database, in batches; the rotation that loaded every row into one session ran at
  0.05-0.07 (bench/RESULTS.md);
- the command's peak RSS: it must not grow with the number of keys (< 64 MiB from N to
  4N), since national scale holds 10,000,000 of them.

`python -m bench.key_rotation [--database postgresql|sqlite] [--keys N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from bench.database import scratch_schema
from bench.documents import Peak
from exchange.agreements.models import Organisation
from exchange.crypto.keyring import load_keyring
from exchange.crypto.keys import LocalKeyProvider, WrappedKey
from exchange.db import make_engine
from exchange.documents.models import BinaryRow
from tests.cli_runner import exchange

MIB = 1024 * 1024
BATCH = 5_000


def _binaries(url: str, data_dir: Path, count: int) -> list[tuple[str, WrappedKey]]:
    """`count` Binaries whose data keys are wrapped by the data dir's keyring (the rows
    only: no content is needed to re-wrap a key); (context, wrapped key) of each."""
    provider = LocalKeyProvider(load_keyring(data_dir / "keyring.json"))
    engine = make_engine(url)
    made = []
    now = datetime.now(UTC)
    with engine.begin() as connection:
        uploader = connection.scalar(select(Organisation.id).where(Organisation.ods == "PRV01"))
        for start in range(0, count, BATCH):
            rows = []
            for _ in range(min(BATCH, count - start)):
                binary_id = uuid.uuid4()
                _, wrapped = provider.new_data_key(str(binary_id))
                made.append((str(binary_id), wrapped))
                rows.append(
                    {
                        "id": binary_id,
                        "blob_name": uuid.uuid4().hex,
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


def _rotate(url: str, data_dir: Path) -> tuple[float, float, str]:
    """Run `exchange keys rotate` in its own process; (seconds, peak RSS in MiB, output)."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")},
        "EXCHANGE_DATA_DIR": str(data_dir),
        "EXCHANGE_DATABASE_URL": url,
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "exchange", "keys", "rotate"],
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
        raise RuntimeError(f"keys rotate failed: {output}")
    return seconds, peak.peak / MIB, output.strip()


def _measure(url: str, work: Path, count: int) -> tuple[float, float, float]:
    """(rotation keys/s, in-memory keys/s, peak RSS MiB) for `count` Binaries."""
    data_dir = work / f"var-{count}"
    exchange("init", data_dir=data_dir, database_url=url)
    document = {"organisations": [{"ods": "PRV01", "name": "Bench Trust", "role": "provider"}]}
    (work / "bench.json").write_text(json.dumps(document))
    exchange("bootstrap", str(work / "bench.json"), data_dir=data_dir, database_url=url)
    keys = _binaries(url, data_dir, count)
    seconds, peak, output = _rotate(url, data_dir)
    if f"{count} data key(s) re-wrapped" not in output:
        raise RuntimeError(f"keys rotate: {output}")
    baseline = _in_memory(data_dir, keys)
    return count / seconds, baseline, peak


def main(argv: list[str] | None = None) -> None:
    """Print the key-rotation rows for each database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("postgresql", "sqlite"), action="append")
    parser.add_argument("--keys", type=int, default=50_000, help="N (then 4N)")
    arguments = parser.parse_args(argv)
    for database in arguments.database or ["postgresql", "sqlite"]:
        peaks = []
        for count in (arguments.keys, 4 * arguments.keys):
            with tempfile.TemporaryDirectory() as tmp:
                if database == "postgresql":
                    with scratch_schema() as url:
                        rate, baseline, peak = _measure(url, Path(tmp), count)
                else:
                    rate, baseline, peak = _measure(f"sqlite:///{tmp}/bench.db", Path(tmp), count)
            peaks.append(peak)
            label = f"keys rotate, {count:,} keys, {database} (keys/s)"
            ratio = rate / baseline
            print(
                f"{label:<48} {rate:>14.0f} {baseline:>14.0f} {ratio:>7.2f} {'>=0.1':>7}",
                flush=True,
            )
        growth = peaks[1] - peaks[0]
        label = f"keys rotate peak RSS, N to 4N, {database} (MiB)"
        print(f"{label:<48} {peaks[0]:>14.1f} {peaks[1]:>14.1f} {growth:>7.1f} {'<64':>7}")


if __name__ == "__main__":
    main()
