"""The wheel an operator (or a container build) installs: every package in it, the
migrations too, and it starts outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import requests

from tests.servers import free_ports, process_running, wait_until

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_in_the_wheel() -> None:
    """pyproject.toml lists the packages (to map migrations/ into exchange.migrations): a new
    package that is not listed would be missing from the wheel."""
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "exchange").rglob("__init__.py")
    }
    found |= {"exchange.migrations", "exchange.migrations.versions"}
    assert listed == found


@pytest.mark.slow
def test_the_wheel_installs_and_runs_outside_the_source_tree(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(dist.glob("exchange-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    # The dependencies come from this test run's environment (offline); the exchange package
    # itself only from the wheel: a path line in a .pth does not load the editable install.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    operator = tmp_path / "operator"
    operator.mkdir()
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_") and k != "PYTHONPATH"
    }
    environment["EXCHANGE_DATA_DIR"] = str(operator / "var")
    where = subprocess.run(
        [str(python), "-c", "import exchange, exchange.migrations; print(exchange.__file__)"],
        cwd=operator,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(site), where
    init = subprocess.run(
        [str(venv / "bin" / "exchange"), "init"],
        cwd=operator,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    assert "migrated database from empty" in init.stdout
    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    environment["EXCHANGE_PUBLIC_BASE_URL"] = base
    serve = [
        str(venv / "bin" / "exchange"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with process_running(serve, tmp_path / "serve.log", env=environment, cwd=operator) as process:
        wait_until(
            lambda: requests.get(f"{base}/healthz", timeout=1).status_code == 200,
            process,
            "exchange serve",
            30,
        )
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        assert (
            requests.get(f"{base}/fhir/metadata", timeout=5).json()["resourceType"]
            == "CapabilityStatement"
        )
