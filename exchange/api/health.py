"""Liveness and readiness (`api.md`)."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from exchange.api.context import services
from exchange.api.guards import public
from exchange.audit.chain import UNSEALED_ALARM_AGE, oldest_unsealed
from exchange.backends import check_document_store, check_key_provider

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
    checks: dict[str, str] = {}
    try:
        with ctx.database.transaction() as session:
            session.execute(text("SELECT 1"))
            oldest = oldest_unsealed(session)
        checks["database"] = "ok"
        lag: timedelta | None = ctx.clock.now() - oldest if oldest is not None else None
        checks["audit-sealer"] = (
            "ok" if lag is None or lag <= UNSEALED_ALARM_AGE else "unsealed audit records older than a minute"
        )
    except SQLAlchemyError:
        checks["database"] = "unreachable"
    checks["document-store"] = check_document_store(ctx.settings)
    checks["key-provider"] = check_key_provider(ctx.settings)
    failing = sorted(name for name, state in checks.items() if state != "ok")
    if failing:
        return jsonify(status="unavailable", failing=failing, checks=checks), 503
    return jsonify(status="ok", checks=checks), 200
