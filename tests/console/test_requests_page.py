"""The DCO's requests page over HTTP: the ICB's requests soonest due first, the
quality-assurance queue, and the search audited as the DCO's."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from exchange.audit.events import AuditKind
from exchange.audit.models import AuditRecord
from exchange.db import Database
from tests.console.conftest import person
from tests.console.world import Month
from tests.factories import FrozenClock


def test_a_dco_lists_the_icbs_open_requests_and_the_qa_queue(
    month: Month, app: Flask, clock: FrozenClock, db: Database
) -> None:
    dco = person(app, clock, "dco@icb01")
    page = dco.get("/console/requests")
    assert page.status_code == 200
    assert "1 request." in dco.last_page
    assert "dco quality assurance" in dco.last_page
    assert "EHC-2026-00412" in dco.last_page
    assert "2026-10-20" in dco.last_page  # received 5 October, the QA clock's due date
    assert "overdue" in dco.last_page
    queue = dco.get("/console/requests?type=dco-quality-assurance&show=open")
    assert queue.status_code == 200 and "1 request." in dco.last_page
    dco.get("/console/requests?type=ehcna-health-advice&show=all")
    assert "0 requests." in dco.last_page
    bad = dco.get("/console/requests?type=something-else&show=later")
    assert bad.status_code == 200
    assert "Choose a type from the list" in dco.last_page
    assert "Choose open or all" in dco.last_page
    tampered = dco.get("/console/requests?after=not-a-date&after_id=x")
    assert tampered.status_code == 400
    with db.transaction() as session:
        searches = session.scalars(
            select(AuditRecord).where(
                AuditRecord.kind == AuditKind.SEARCH.value, AuditRecord.agent_user == "dco@icb01"
            )
        ).all()
    assert len(searches) == 3


def test_only_a_dco_sees_the_requests(month: Month, app: Flask, clock: FrozenClock) -> None:
    lead = person(app, clock, "ig.lead@la01")
    assert lead.get("/console/requests").status_code == 403
    assert "Requests" not in lead.get("/console/").get_data(as_text=True).split("<main")[1]
