"""Running the real `exchange` command in a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def exchange(
    *args: str, data_dir: Path, database_url: str | None = None, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m exchange ARGS` with the given data directory and database."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    environment["EXCHANGE_DATA_DIR"] = str(data_dir)
    if database_url is not None:
        environment["EXCHANGE_DATABASE_URL"] = database_url
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "exchange", *args],
        cwd=data_dir.parent,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
