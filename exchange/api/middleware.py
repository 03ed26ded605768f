"""Request ids, operator log lines and security headers, for every response."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request

from exchange.db import Database
from exchange.logs import request_id_var

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("exchange.http")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STATIC_PREFIXES = ("/console/static/",)


def init_app(app: Flask) -> None:
    """Install the request hooks on `app`."""
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_clear)


def _start() -> None:
    supplied = request.headers.get("X-Request-ID", "")
    # Echo a client's id only if it is harmless; anything else could inject into logs.
    g.request_id = supplied if _CLIENT_REQUEST_ID.fullmatch(supplied) else str(uuid.uuid4())
    g.started = time.perf_counter()
    request_id_var.set(g.request_id)


def _finish(response: Response) -> Response:
    request_id = g.get("request_id") or str(uuid.uuid4())
    response.headers["X-Request-ID"] = request_id
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith(_STATIC_PREFIXES):
        # Anything else may carry personal data (or reveal that it exists): never cache it.
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if response.mimetype == "text/html":
        # The console's pages: no inline script or style anywhere (the NHS.UK frontend is
        # served from 'self'), no framing (clickjacking), forms post only back here.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        )
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    started = g.get("started")
    log.info(
        "request",
        extra={
            "request_id": request_id,
            "method": request.method,
            # The path only: query strings can carry NHS numbers.
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
            "client_id": getattr(g.get("caller"), "client_id", None),
        },
    )
    return response


def _clear(_exc: BaseException | None) -> None:
    request_id_var.set(None)


class HoldingLookups:
    """WSGI: each request's look-ups and read sessions share one database connection,
    given back before the response body is sent (`Database.holding_lookups`)."""

    def __init__(self, app: WSGIApplication, database: Database) -> None:
        self.app = app
        self.database = database

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self.database.holding_lookups():
            return self.app(environ, start_response)
