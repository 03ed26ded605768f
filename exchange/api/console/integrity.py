"""Audit integrity: the chain head, the sealing backlog, the newest signed checkpoint and
the last verification; "verify now" starts a verification in a background thread of this
worker, and the page follows its progress (it refreshes itself while the run goes on, so
no JavaScript is needed)."""

from __future__ import annotations

import threading

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import g, redirect, url_for
from werkzeug import Response

from exchange.api.console import security
from exchange.api.console.blueprint import bp
from exchange.api.console.pages import render
from exchange.api.context import services
from exchange.audit.verification import integrity as integrity_use_case
from exchange.audit.verification import run_verification, start_verification
from exchange.crypto.keyring import load_keyring

#: Seconds between refreshes of the page while a verification runs.
REFRESH_SECONDS = 2


@bp.get("/integrity")
@security.requires("ig-lead", "admin")
def integrity() -> Response:
    """The state of the audit trail's integrity checks."""
    ctx = services()
    with ctx.database.transaction() as session:
        state = integrity_use_case(session, ctx.clock.now())
    running = state.latest_run is not None and state.latest_run.running
    return render(
        "console/integrity.jinja",
        "Audit integrity",
        state=state,
        refresh_seconds=REFRESH_SECONDS if running else None,
    )


@bp.post("/integrity/verify")
@security.requires("ig-lead", "admin")
def verify_now() -> Response:
    """Start a verification (unless one is running) in the background."""
    ctx = services()
    caller = security.caller()
    with ctx.database.transaction() as session:
        run_id, new = start_verification(
            session, caller.actor, g.get("request_id"), ctx.clock.now()
        )
    if new:
        keyring_path = ctx.settings.keyring_path

        def public_key() -> Ed25519PublicKey:
            return load_keyring(keyring_path).public_key

        threading.Thread(
            target=run_verification,
            args=(ctx.database, run_id, caller.actor, public_key, ctx.clock),
            name=f"audit-verify-{run_id}",
            daemon=True,
        ).start()
    return redirect(url_for("console.integrity"))
