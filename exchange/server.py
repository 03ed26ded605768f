"""`exchange serve`: the app under gunicorn, one app (and one audit sealer) per worker."""

from __future__ import annotations

import ctypes
import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from flask import Flask
from gunicorn.app.base import BaseApplication

from exchange.api.context import services
from exchange.app import create_app
from exchange.audit.sealer import Sealer
from exchange.auth.failures import flush_failure_windows
from exchange.auth.tokens import purge_expired
from exchange.backends import blob_store
from exchange.clock import Clock
from exchange.crypto.keyring import load_keyring
from exchange.db import Database
from exchange.documents.housekeeping import hourly_sweep
from exchange.settings import Settings


def _post_worker_init(worker: Any) -> None:
    app: Flask = worker.wsgi
    ctx = services_of(app)
    sealer = Sealer(
        ctx.database,
        ctx.clock,
        lambda: load_keyring(ctx.settings.keyring_path),
        housekeeping=lambda: housekeeping(ctx.database, ctx.clock, ctx.settings),
    )
    sealer.start()
    app.extensions["exchange.sealer"] = sealer


def housekeeping(database: Database, clock: Clock, settings: Settings) -> None:
    """Purge spent jtis and old tokens; audit the counts of closed token-failure windows;
    once an hour, sweep orphan blobs and expired uploads (one process at a time)."""
    with database.transaction() as session:
        purge_expired(session, clock.now())
        flush_failure_windows(session, clock)
    now = clock.now()
    if now - _last_sweep.get("at", datetime.min.replace(tzinfo=UTC)) < SWEEP_INTERVAL:
        return
    _last_sweep["at"] = now
    hourly_sweep(database, blob_store(settings), now)


SWEEP_INTERVAL = timedelta(hours=1)
_last_sweep: dict[str, datetime] = {}


def _worker_exit(_server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    sealer = app.extensions.get("exchange.sealer") if app is not None else None
    if sealer is not None:
        sealer.stop()


def services_of(app: Flask) -> Any:
    """The Services bound to `app` (outside a request)."""
    with app.app_context():
        return services()


class Server(BaseApplication):  # type: ignore[misc]
    """A gunicorn application that builds the Flask app in each worker after the fork, so
    no database connection or thread is shared between processes."""

    def __init__(self, settings: Settings, host: str, port: int, workers: int) -> None:
        self._settings = settings
        self._options: dict[str, Any] = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": 4,
            "timeout": 120,
            "graceful_timeout": 20,
            "accesslog": None,  # our own log line per request carries the request id
            "post_worker_init": _post_worker_init,
            "worker_exit": _worker_exit,
            # Forwarded headers are trusted only through EXCHANGE_PROXY_HOPS (ProxyFix in
            # create_app); gunicorn's own handling would trust X-Forwarded-Proto from any
            # local client and make every response claim HTTPS.
            "forwarded_allow_ips": "",
            "secure_scheme_headers": {},
            # FHIR searches can be long; past this the request is refused with a bare 414.
            "limit_request_line": 8190,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn 24+ opens a control socket in $HOME; we do not use it, and two
            # servers on one host would fight over it.
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Flask:
        return create_app(self._settings)


def exposure_warning(settings: Settings, host: str) -> str | None:
    """A warning when the service would face clients directly: gunicorn has no header
    timeout, so slow clients (slowloris) can tie up every worker; production runs behind
    the reverse proxy of `infra/`, which buffers requests and enforces timeouts."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback or settings.proxy_hops:
        return None
    return (
        f"warning: serving on {host} without EXCHANGE_PROXY_HOPS: the service must sit "
        "behind a reverse proxy (see infra/README.md) that enforces request timeouts; on its "
        "own it is open to slow-client "
        "attacks and cannot see clients' addresses"
    )


#: glibc's `mallopt` parameters (malloc.h) and the values `serve` gives them.
M_TRIM_THRESHOLD: Final = -1
M_MMAP_THRESHOLD: Final = -3
TRIM_THRESHOLD: Final = 64 * 1024 * 1024
MMAP_THRESHOLD: Final = 32 * 1024 * 1024


def steady_heap() -> bool:
    """Let glibc's malloc keep and reuse the buffers a streamed document passes through
    (1 MiB reads, 256 KiB sealed chunks, 8 MiB S3 parts) instead of returning them to the
    kernel and faulting fresh zeroed pages in for the next: by default it maps an
    allocation over its adaptive threshold on its own and trims a heap whose free top
    exceeds twice that, so a 100 MiB upload spent a tenth of its CPU in page faults
    (bench/profiles/documents.md, "Twelfth pass"). Memory stays bounded by what is live at
    once: freed buffers are reused, never added to. Set in the master before the workers
    fork, so they inherit it; False (defaults kept) where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run the service until interrupted."""
    steady_heap()
    Server(settings, host, port, workers).run()
