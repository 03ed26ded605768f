"""Running the `exchange` command as an operator would: in-process with Click's CliRunner
(the same entry point, environment and working directory, without a second of interpreter
start-up per call), or, for the smoke test, in a real process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from contextlib import chdir
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from exchange.cli import main

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Completed:
    """What a command left: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def _environment(data_dir: Path, database_url: str | None, env: dict[str, str]) -> dict[str, str]:
    environment = {"EXCHANGE_DATA_DIR": str(data_dir)}
    if database_url is not None:
        environment["EXCHANGE_DATABASE_URL"] = database_url
    environment.update(env)
    return environment


def exchange(
    *args: str,
    data_dir: Path,
    database_url: str | None = None,
    stdin: str | None = None,
    **env: str,
) -> Completed:
    """Run `exchange ARGS` in-process with the given data directory and database, from the
    data directory's parent (where an operator would stand, and where `.env` is read)."""
    # Every EXCHANGE_* variable of the test process is unset for the run: only what the
    # test gives counts, as in the operator's shell.
    environment: dict[str, str | None] = {k: None for k in os.environ if k.startswith("EXCHANGE_")}
    environment.update(_environment(data_dir, database_url, env))
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("exchange")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        with chdir(data_dir.parent):
            result = CliRunner().invoke(
                main, list(args), env=environment, input=stdin, catch_exceptions=False
            )
    finally:
        # The command points the `exchange` loggers at its (now closed) stderr: undo that.
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate
    return Completed(result.exit_code, result.stdout, result.stderr)


def exchange_process(
    *args: str,
    data_dir: Path,
    database_url: str | None = None,
    stdin: str | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m exchange ARGS` in a real process (the console script's path)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    environment.update(_environment(data_dir, database_url, env))
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
