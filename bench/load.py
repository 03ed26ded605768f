"""A load generator for the API benchmarks: N client processes, each on one keep-alive
connection, sending prepared requests for a fixed time (or a fixed number), recording every
latency. Processes rather than threads so that the clients' own Python does not serialise
on one interpreter lock while the server is measured."""

from __future__ import annotations

import http.client
import multiprocessing
import os
import resource
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
from typing import Final
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
class Cpu:
    """CPU seconds spent during a run: by the server's processes, by PostgreSQL's (every
    backend on the machine), and by the load's own client processes."""

    server: float = 0.0
    database: float = 0.0
    clients: float = 0.0


@dataclass(frozen=True)
class Result:
    """What one load run measured."""

    label: str
    done: int
    errors: int
    seconds: float
    latencies: tuple[float, ...]
    first_error: str = ""
    cpu: Cpu = field(default_factory=Cpu)

    def cpu_per_request(self) -> str:
        """Where a request's CPU went, in milliseconds."""
        if not self.done:
            return ""
        per = 1000 / self.done
        return (
            f"cpu/req ms: server {self.cpu.server * per:.2f} db {self.cpu.database * per:.2f} "
            f"clients {self.cpu.clients * per:.2f}"
        )

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
    server = _server_tree(base)
    before = (_cpu(server), _cpu(_postgres()), _children_cpu())
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
    cpu = Cpu(_cpu(server) - before[0], _cpu(_postgres()) - before[1], _children_cpu() - before[2])
    return Result(label, len(latencies), errors, elapsed, tuple(latencies), first_error, cpu)


_TICK: Final = os.sysconf("SC_CLK_TCK")


def _cpu(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the processes (those that have gone count nothing)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _postgres() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _server_tree(base: str) -> list[int]:
    """The server's master and worker processes (none if `base` is not ours to see)."""
    try:
        master = server_pid(base)
    except RuntimeError:
        return []
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *(int(child) for child in children)]


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
