"""The app imports the FHIR models it validates when it is built, not on the first
request that needs each (a worker's first upload spent most of a second importing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from exchange.fhir.validation import VALIDATED_TYPES

ROOT = Path(__file__).resolve().parents[2]


def test_building_the_app_imports_the_validated_models(tmp_path: Path) -> None:
    modules = [f"fhir.resources.R4B.{name.lower()}" for name in VALIDATED_TYPES]
    script = (
        "import sys\n"
        "from exchange.app import create_app\n"
        f"modules = {modules!r}\n"
        "before = [m for m in modules if m in sys.modules]\n"
        "create_app()\n"
        "after = [m for m in modules if m in sys.modules]\n"
        "print(before, after)\n"
    )
    env = {**os.environ, "EXCHANGE_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}"}
    shown = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert shown == f"[] {modules!r}"
