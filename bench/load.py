"""A load generator for the API benchmarks: N client processes, each on one keep-alive
connection, sending prepared requests for a fixed time (or a fixed number), recording every
latency. Processes rather than threads so that the clients' own Python does not serialise
on one interpreter lock while the server is measured."""

from __future__ import annotations

import http.client
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Call:
    """One prepared request and the status it must answer."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    expect: int = 200


@dataclass(frozen=True)
class Result:
    """What one load run measured."""

    label: str
    done: int
    errors: int
    seconds: float
    latencies: tuple[float, ...]
    first_error: str = ""

    @property
    def rate(self) -> float:
        """Requests answered as expected, per second."""
        return self.done / self.seconds if self.seconds else 0.0

    def percentile(self, p: int) -> float:
        """The p-th percentile latency, in milliseconds."""
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000


#: A client's work: given its slot, the calls it sends in turn.
Plan = Callable[[int], Sequence[Call]]


def _client(
    base: str, calls: Sequence[Call], deadline: float, count: int | None, out: Connection
) -> None:
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    latencies: list[float] = []
    errors, first_error, index = 0, "", 0
    while (count is None and time.monotonic() < deadline) or (count is not None and index < count):
        call = calls[index % len(calls)]
        index += 1
        started = time.perf_counter()
        try:
            connection.request(call.method, call.path, body=call.body, headers=call.headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            errors += 1
            first_error = first_error or f"{call.method} {call.path}: {error!r}"
            connection.close()
            connection = http.client.HTTPConnection(
                parts.hostname or "127.0.0.1", parts.port, timeout=60
            )
            continue
        elapsed = time.perf_counter() - started
        if response.status != call.expect:
            errors += 1
            first_error = first_error or (
                f"{call.method} {call.path}: {response.status} {payload[:300]!r}"
            )
        else:
            latencies.append(elapsed)
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
    connection.close()
    out.send((latencies, errors, first_error))
    out.close()


def run(
    label: str,
    base: str,
    plan: Plan,
    clients: int = 8,
    seconds: float = 10.0,
    count: int | None = None,
) -> Result:
    """Send `plan(slot)` from `clients` processes for `seconds` (or `count` requests in
    all, split between them) and gather the latencies of the expected answers."""
    context = multiprocessing.get_context("fork")
    pipes, processes = [], []
    per_client = None if count is None else -(-count // clients)
    start = time.monotonic()
    deadline = start + seconds
    for slot in range(clients):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_client, args=(base, plan(slot), deadline, per_client, send), daemon=True
        )
        process.start()
        send.close()
        pipes.append(receive)
        processes.append(process)
    latencies: list[float] = []
    errors, first_error = 0, ""
    for receive in pipes:
        got, failed, message = receive.recv()
        latencies += got
        errors += failed
        first_error = first_error or message
    for process in processes:
        process.join()
    elapsed = time.monotonic() - start
    return Result(label, len(latencies), errors, elapsed, tuple(latencies), first_error)


def server_pid(base: str) -> int:
    """The pid of the `exchange serve` master process listening at `base`."""
    port = base.rsplit(":", 1)[1].encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in command and port in command:
            return int(entry)
    raise RuntimeError(f"no exchange serve process for {base}")


@contextmanager
def profiled(base: str, directory: Path | None, name: str) -> Iterator[None]:
    """Sample the server's workers with py-spy while the block runs: the threads holding
    the interpreter lock (where the workers' CPU goes), without pausing them; collapsed
    stacks in `directory/name.txt`. Nothing when `directory` is None."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    output = directory / f"{name}.txt"
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(server_pid(base)),
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            "200",
            "--gil",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
