"""Liveness and readiness (`api.md`)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from exchange.api.context import services
from exchange.api.guards import public
from exchange.backends import readiness

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz() -> Response:
    """Liveness: the process answers."""
    return jsonify(status="ok")


@bp.get("/readyz")
@public
def readyz() -> tuple[Response, int]:
    """Readiness: 200 only when the database, document store and key provider answer,
    and the audit sealer is keeping up; else 503 naming the failing part."""
    ctx = services()
    checks = readiness(ctx.settings, ctx.database, ctx.clock.now())
    failing = sorted(name for name, state in checks.items() if state != "ok")
    if failing:
        return jsonify(status="unavailable", failing=failing, checks=checks), 503
    return jsonify(status="ok", checks=checks), 200
