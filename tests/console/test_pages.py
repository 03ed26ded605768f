"""The console's pages over HTTP: reviews, agreements, the dashboard's refusals, and the
console without its NHS.UK assets."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from sqlalchemy import select

from exchange.api.console import pages
from exchange.app import create_app
from exchange.audit.models import AuditRecord
from exchange.db import Database
from exchange.reviews.models import AuditReview
from exchange.settings import Settings
from tests.console.conftest import person
from tests.console.world import Month
from tests.factories import FrozenClock


def test_a_reviewed_event_leaves_the_queue_and_the_review_is_audited(
    month: Month, app: Flask, clock: FrozenClock, db: Database
) -> None:
    dco = person(app, clock, "dco@icb01")  # also ICB01's IG lead
    page = dco.get("/console/reviews").get_data(as_text=True)
    assert "1 to review" in page
    with db.transaction() as session:
        (flagged,) = session.scalars(
            select(AuditRecord).where(AuditRecord.review_reason == "break-glass")
        ).all()
    target = f"/console/reviews/{flagged.event_id}"
    short = dco.post(target, {"note": "ok"}, form_page="/console/reviews")
    assert short.status_code == 422 and "Enter a note of 10 to 2000 characters" in dco.last_page
    done = dco.post(
        target, {"note": "Justified: safeguarding meeting minuted."}, form_page="/console/reviews"
    )
    assert done.status_code == 302
    assert "0 to review" in dco.get("/console/reviews").get_data(as_text=True)
    again = dco.post(target, {"note": "Reviewing it twice over."}, form_page="/console/sign-out")
    assert again.status_code == 409
    with db.transaction() as session:
        (review,) = session.scalars(select(AuditReview)).all()
        audited = session.scalars(
            select(AuditRecord).where(AuditRecord.kind == "console:break-glass-review")
        ).all()
    assert (review.organisation, review.reviewer) == ("ICB01", "dco@icb01")
    assert len(audited) == 1 and "safeguarding meeting minuted" in audited[0].payload
    assert audited[0].patient_id == flagged.patient_id
    # PRV01 holds the document: its queue still has the event (each organisation reviews).


def test_an_admin_registers_and_terminates_an_agreement(
    month: Month, app: Flask, clock: FrozenClock, db: Database
) -> None:
    admin = person(app, clock, "admin@icb01")
    bad = admin.post(
        "/console/agreements",
        {"agreement_id": "dsa-2027-01", "title": "x", "parties": "LA01", "start": "2027-01-01"},
    )
    assert bad.status_code == 422
    assert "parties must name at least two organisations" in admin.last_page
    made = admin.post(
        "/console/agreements",
        {
            "agreement_id": "dsa-2027-01",
            "title": "Annual reviews <b>2027</b>",
            "parties": "LA01 PRV02",
            "purposes": "annual-review",
            "start": "2027-01-01",
        },
    )
    assert made.status_code == 302
    listing = admin.get(made.headers["Location"]).get_data(as_text=True)
    assert "agreement dsa-2027-01: created" in listing
    assert "Annual reviews &lt;b&gt;2027&lt;/b&gt;" in listing
    ended = admin.post(
        "/console/agreements/dsa-2027-01/terminate", {}, form_page="/console/agreements"
    )
    assert ended.status_code == 302, ended.headers
    after = admin.get(ended.headers["Location"]).get_data(as_text=True)
    assert "agreement dsa-2027-01: updated (status)" in after
    with db.transaction() as session:
        changes = session.scalars(
            select(AuditRecord).where(
                AuditRecord.kind == "operator:registry-change",
                AuditRecord.agent_user == "admin@icb01",
            )
        ).all()
    assert len([c for c in changes if "dsa-2027-01" in c.payload]) == 2
    assert (
        admin.post(
            "/console/agreements/no-such/terminate", {}, form_page="/console/agreements"
        ).status_code
        == 404
    )


def test_the_dashboard_refuses_a_bad_or_future_month(
    month: Month, app: Flask, clock: FrozenClock
) -> None:
    dco = person(app, clock, "dco@icb01")
    assert "Enter a month as YYYY-MM" in dco.get("/console/dashboard?month=11-2026").get_data(
        as_text=True
    )
    future = dco.get("/console/dashboard?month=2027-05")
    assert future.status_code == 400
    ok = dco.get("/console/dashboard?month=2026-11&owner=PRV01").get_data(as_text=True)
    assert "50.0%" in ok


def test_without_its_assets_the_console_warns_once_and_works_unstyled(
    settings: Settings,
    db: Database,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pages, "NHSUK_CSS", pages.STATIC / "nhsuk" / "not-built.css")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep(logging.WARNING)
    logging.getLogger("exchange.api.console").addHandler(keep)
    try:
        bare = create_app(settings, clock=clock, database=db)
    finally:
        logging.getLogger("exchange.api.console").removeHandler(keep)
    assert len(seen) == 1 and "not built" in seen[0].getMessage()
    page = bare.test_client().get("/console/login")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "nhsuk-frontend.min.css" not in html and "Sign in" in html
