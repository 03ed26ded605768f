"""Real backing servers on loopback for the storage and key-provider tests
(`documents.md`, "Test servers"): SeaweedFS for S3, OpenBao for Vault transit, and moto's
server for the AWS KMS API. Each runs from a PyPI wheel on free ports and is stopped after."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

BIN = Path(sys.executable).parent


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on loopback."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in sockets]


def wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, seconds: float = 60
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early (see its log)")
        try:
            if ready():
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not become ready")


@contextmanager
def process_running(
    args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process with its output in `log`, terminated (then killed) when the block ends."""
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class S3Server:
    """An S3 endpoint and the credentials it enforces (SigV4)."""

    endpoint: str
    access_key: str
    secret_key: str

    def exchange_env(self, bucket: str) -> dict[str, str]:
        """The settings that make `exchange serve` keep its blobs in `bucket` here."""
        return {
            "EXCHANGE_BLOB_STORE": "s3",
            "EXCHANGE_S3_BUCKET": bucket,
            "EXCHANGE_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client of this endpoint (path-style), `config` added to its botocore
        Config."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, **config),
        )


class SeaweedFS:
    """`weed mini` with S3 on its own port, SigV4 credentials and encryption at rest; it can
    be stopped and started again on the same ports and data (a dependency that goes away
    and comes back)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        access, secret = "exchange-test", "exchange-test-secret"
        config = directory / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "exchange",
                            "credentials": [{"accessKey": access, "secretKey": secret}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        ports = free_ports(12)
        names = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "webdav.port",
            "debug.port",
        ]
        self._args = [
            str(BIN / "weed"),
            "mini",
            f"-dir={directory / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-admin.ui=false",
            f"-s3.config={config}",
            "-s3.encryptVolumeData",
            # Off: their fixed default ports (8181, 9101) clash between servers run in parallel.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(f"-{name}={port}" for name, port in zip(names, ports, strict=True)),
        ]
        self.server = S3Server(f"http://127.0.0.1:{ports[6]}", access, secret)
        self._running: ExitStack | None = None

    def start(self) -> None:
        """Run it, and wait until it accepts our credentials."""
        client = self.server.client(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5)

        def accepts_our_credentials() -> bool:
            # Ready only once a signed request succeeds (the port answers before the
            # identities are loaded) and an object can be written and read back (the
            # buckets answer before the volume server has joined: reads then fail).
            try:
                if "readiness" not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
                    client.create_bucket(Bucket="readiness")
                client.put_object(Bucket="readiness", Key="probe", Body=b"probe")
                read = client.get_object(Bucket="readiness", Key="probe")["Body"].read()
            except (BotoCoreError, ClientError):
                return False
            return bool(read == b"probe")

        running = ExitStack()
        process = running.enter_context(process_running(self._args, self.directory / "weed.log"))
        self._running = running
        wait_until(accepts_our_credentials, process, "SeaweedFS")

    def stop(self) -> None:
        """Stop it (its data stays for the next start)."""
        if self._running is not None:
            self._running.close()
            self._running = None


@contextmanager
def seaweedfs(directory: Path) -> Iterator[S3Server]:
    """SeaweedFS running for the block; its data removed after."""
    server = SeaweedFS(directory)
    server.start()
    try:
        yield server.server
    finally:
        server.stop()
        shutil.rmtree(directory / "data", ignore_errors=True)


@contextmanager
def moto_kms(directory: Path) -> Iterator[str]:
    """moto's server: the AWS KMS API on loopback (lenient: it proves wiring, not policy)."""
    port = free_ports(1)[0]
    endpoint = f"http://127.0.0.1:{port}"
    with process_running(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], directory / "moto.log"
    ) as process:
        wait_until(
            lambda: requests.get(f"{endpoint}/moto-api/", timeout=2).status_code == 200,
            process,
            "moto",
        )
        yield endpoint


@dataclass(frozen=True)
class VaultServer:
    """An OpenBao dev server and its root token."""

    address: str
    token: str


@contextmanager
def openbao(directory: Path) -> Iterator[VaultServer]:
    """`bao server -dev` on loopback, with the transit engine enabled."""
    port, token = free_ports(1)[0], "exchange-test-root"
    address = f"http://127.0.0.1:{port}"
    args = [
        str(BIN / "bao"),
        "server",
        "-dev",
        f"-dev-listen-address=127.0.0.1:{port}",
        f"-dev-root-token-id={token}",
    ]
    with process_running(args, directory / "bao.log") as process:
        wait_until(
            lambda: requests.get(f"{address}/v1/sys/health", timeout=2).status_code == 200,
            process,
            "OpenBao",
        )
        enabled = requests.post(
            f"{address}/v1/sys/mounts/transit",
            json={"type": "transit"},
            headers={"X-Vault-Token": token},
            timeout=10,
        )
        if enabled.status_code not in (200, 204):
            raise RuntimeError("could not enable the transit engine")
        yield VaultServer(address, token)
