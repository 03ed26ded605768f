"""The IG review queue: flagged events (break-glass reads, contested consents, birth-date
corrections) the IG lead's organisation has not reviewed; each marked reviewed with a note."""

from __future__ import annotations

import uuid

from flask import redirect, request, url_for
from werkzeug import Response
from werkzeug.exceptions import NotFound as HttpNotFound

from exchange.api.console import forms, security
from exchange.api.console.blueprint import bp
from exchange.api.console.pages import render
from exchange.api.context import services
from exchange.errors import Invalid
from exchange.reviews.service import NOTE_MAX, NOTE_MIN, mark_reviewed, review_queue

TITLE = "Review queue"


def _queue(errors: dict[str, str] | None = None, notes: dict[str, str] | None = None) -> Response:
    ctx = services()
    with ctx.database.transaction() as session:
        page = review_queue(
            session,
            security.caller(),
            forms.paging(request.args, descending=False),
            ctx.clock.now(),
        )
    next_link = f"?after={page.next.at}&after_id={page.next.id}" if page.next else None
    return render(
        "console/reviews.jinja",
        TITLE,
        status=422 if errors else 200,
        errors=errors,
        page=page,
        notes=notes or {},
        next_link=next_link,
        reviewed=request.args.get("reviewed") == "1",
        note_min=NOTE_MIN,
        note_max=NOTE_MAX,
    )


@bp.get("/reviews")
@security.requires("ig-lead")
def reviews() -> Response:
    """The queue, oldest first."""
    return _queue()


@bp.post("/reviews/<event_id>")
@security.requires("ig-lead")
def review(event_id: str) -> Response:
    """Mark one event reviewed with a note."""
    try:
        event = uuid.UUID(event_id)
    except ValueError:
        raise HttpNotFound() from None
    note = request.form.get("note", "")[: NOTE_MAX + 1000]
    ctx = services()
    try:
        with ctx.database.transaction() as session:
            mark_reviewed(session, security.caller(), event, note, ctx.clock.now())
    except Invalid as problem:
        field = f"note-{event}"
        return _queue({field: problem.issues[0].diagnostics}, {str(event): note})
    return redirect(url_for("console.reviews", reviewed=1))
