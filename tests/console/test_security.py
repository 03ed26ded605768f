"""The console's security over HTTP: stored XSS renders inert, CSRF, session fixation,
lock-out, idle timeout, sign-out, roles, another organisation's events, headers, audit."""

from __future__ import annotations

import csv as csv_module
import io
import re
import uuid

from flask import Flask
from sqlalchemy import select, update

from exchange.audit.models import AuditRecord
from exchange.db import Database
from exchange.documents.models import DocumentRow
from exchange.users.service import IDLE_TIMEOUT, LOCKOUT
from tests.console.conftest import EXAMPLE_PASSWORD, NEW_PASSWORDS, ConsoleUser, person
from tests.console.world import SCRIPT_NOTE, Month
from tests.factories import FrozenClock


def _events(db: Database, kind: str) -> list[AuditRecord]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditRecord).where(AuditRecord.kind == kind).order_by(AuditRecord.id)
            )
        )


def _cookie(user: ConsoleUser) -> str | None:
    cookie = user.client.get_cookie("console")
    return cookie.value if cookie else None


def test_stored_script_in_a_title_and_a_note_renders_inert(
    month: Month, ig_lead: ConsoleUser, db: Database
) -> None:
    # The API refuses < and > in titles; a title stored before that rule (or by any other
    # way in) must still be shown as text.
    with db.transaction() as session:
        row = session.get(DocumentRow, uuid.UUID(month.document["id"]))
        assert row is not None
        resource = dict(row.resource)
        resource["content"] = [
            {
                "attachment": {
                    **resource["content"][0]["attachment"],
                    "title": "<script>document.title='pwned'</script><img src=x onerror=alert(1)>",
                }
            }
        ]
        session.execute(
            update(DocumentRow).where(DocumentRow.id == row.id).values(resource=resource)
        )
    page = ig_lead.get(f"/console/child?nhs_number={month.child.number}")
    assert page.status_code == 200
    html = ig_lead.last_page
    assert "<script>document.title" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert SCRIPT_NOTE not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt; Panel agreed" in html
    # No script on the page but the console's own files.
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/console/static/supported.js">'
    ] or all("src=" in tag for tag in re.findall(r"<script[^>]*>", html))


def test_a_form_without_its_csrf_token_is_refused_and_audited(
    month: Month, ig_lead: ConsoleUser, db: Database
) -> None:
    target = f"/console/reviews/{uuid.uuid4()}"
    missing = ig_lead.client.post(target, data={"note": "Reviewed: justified."})
    assert missing.status_code == 403
    wrong = ig_lead.client.post(target, data={"note": "x" * 20, "csrf_token": "0" * 64})
    assert wrong.status_code == 403
    # A token from another session is no good either.
    assert wrong.get_data(as_text=True).count("did not come from this console") == 1
    refused = [e for e in _events(db, "console:page-view") if e.outcome == "4"]
    assert len(refused) == 2
    assert all('"outcomeDesc":"csrf-token-refused"' in e.payload for e in refused)
    assert {e.agent_user for e in refused} == {"ig.lead@la01"}
    # The login form is protected too.
    anonymous = ig_lead.client.application.test_client()
    assert (
        anonymous.post("/console/login", data={"username": "x", "password": "y"}).status_code == 403
    )


def test_sign_in_gives_a_new_session_token_and_ignores_a_planted_one(
    app: Flask, console_world: None, clock: FrozenClock
) -> None:
    victim = ConsoleUser(app.test_client(), clock)
    victim.client.set_cookie("console", "planted-by-an-attacker")
    victim.first_sign_in("ig.lead@la01")
    token = _cookie(victim)
    assert token and token != "planted-by-an-attacker"
    attacker = app.test_client()
    attacker.set_cookie("console", "planted-by-an-attacker")
    assert attacker.get("/console/access-log").status_code == 302
    # Each step of a sign-in moves to a new token.
    victim.client.delete_cookie("console")
    step = victim.post(
        "/console/login", {"username": "ig.lead@la01", "password": NEW_PASSWORDS["ig.lead@la01"]}
    )
    half_way = _cookie(victim)
    assert step.headers["Location"].startswith("/console/login/code")
    victim.post("/console/login/code", {"code": victim.code()})
    assert _cookie(victim) not in (half_way, token)
    # The half-way token does not open the console.
    replay = app.test_client()
    replay.set_cookie("console", half_way or "")
    assert replay.get("/console/access-log").status_code == 302


def test_five_failures_lock_the_account_and_every_one_is_audited(
    app: Flask, console_world: None, clock: FrozenClock, db: Database
) -> None:
    someone = ConsoleUser(app.test_client(), clock, username="ig.lead@la01")
    for _ in range(5):
        page = someone.post("/console/login", {"username": "ig.lead@la01", "password": "wrong"})
        assert (
            page.status_code == 200 and "Enter a correct username and password" in someone.last_page
        )
    locked = someone.post(
        "/console/login", {"username": "ig.lead@la01", "password": EXAMPLE_PASSWORD}
    )
    assert locked.status_code == 200  # the right password, refused while locked
    failures = _events(db, "console:login-failed")
    reasons = [e.payload.split('"outcomeDesc":"')[1].split('"')[0] for e in failures]
    assert reasons == ["wrong-password"] * 4 + ["wrong-password; locked", "locked"]
    assert {e.agent_user for e in failures} == {"ig.lead@la01"}
    clock.advance(seconds=LOCKOUT.total_seconds() + 1)
    after = someone.post(
        "/console/login", {"username": "ig.lead@la01", "password": EXAMPLE_PASSWORD}
    )
    assert after.status_code == 302


def test_wrong_codes_count_towards_the_lock_out(
    app: Flask, console_world: None, clock: FrozenClock, db: Database
) -> None:
    lead = person(app, clock, "ig.lead@la01")
    lead.client.post("/console/sign-out", data={"csrf_token": _csrf(lead, "/console/sign-out")})
    lead.post(
        "/console/login", {"username": "ig.lead@la01", "password": NEW_PASSWORDS["ig.lead@la01"]}
    )
    for _ in range(4):
        assert lead.post("/console/login/code", {"code": "000000"}).status_code == 200
    last = lead.post("/console/login/code", {"code": "000000"})
    assert "expired or the account is locked" in lead.last_page and last.status_code == 200
    # A code used once is not good again (replay), even within its 30 seconds.
    assert [e.payload.count("wrong-code") for e in _events(db, "console:login-failed")] == [1] * 5


def _csrf(user: ConsoleUser, path: str) -> str:
    from tests.console.conftest import csrf_of

    return csrf_of(user.client.get(path).get_data(as_text=True))


def test_an_unknown_username_is_audited_without_what_was_typed(
    app: Flask, console_world: None, clock: FrozenClock, db: Database
) -> None:
    someone = ConsoleUser(app.test_client(), clock)
    someone.post("/console/login", {"username": "my-secret-password", "password": "x"})
    (failure,) = _events(db, "console:login-failed")
    assert "my-secret-password" not in failure.payload
    assert '"outcomeDesc":"unknown-user"' in failure.payload


def test_a_session_ends_after_idle_time_and_at_sign_out(
    month: Month, ig_lead: ConsoleUser, clock: FrozenClock, db: Database, app: Flask
) -> None:
    assert ig_lead.get("/console/access-log").status_code == 200
    clock.advance(seconds=IDLE_TIMEOUT.total_seconds() + 1)
    assert ig_lead.get("/console/access-log").status_code == 302
    assert any('"outcomeDesc":"idle-timeout"' in e.payload for e in _events(db, "console:logout"))
    ig_lead.sign_in()
    token = _cookie(ig_lead)
    signed_out = ig_lead.post("/console/sign-out", {})
    assert signed_out.status_code == 200 and "You have signed out" in ig_lead.last_page
    stolen = app.test_client()
    stolen.set_cookie("console", token or "")
    assert stolen.get("/console/access-log").status_code == 302


def test_each_role_sees_its_pages_only(month: Month, app: Flask, clock: FrozenClock) -> None:
    lead = person(app, clock, "ig.lead@la01")
    admin = person(app, clock, "admin@icb01")
    dco = person(app, clock, "dco@icb01")
    assert lead.get("/console/dashboard").status_code == 403
    assert dco.get("/console/dashboard").status_code == 200
    assert admin.get("/console/access-log").status_code == 403
    assert admin.get("/console/agreements").status_code == 200
    assert lead.get("/console/agreements").status_code == 200
    assert "Register an agreement" not in lead.last_page
    assert "Register an agreement" in admin.get("/console/agreements").get_data(as_text=True)
    terminate = lead.post(
        "/console/agreements/dsa-2026-01/terminate", {}, form_page="/console/sign-out"
    )
    assert terminate.status_code == 403
    assert app.test_client().get("/console/child").status_code == 302


def test_la01s_ig_lead_cannot_see_la02s_events_by_editing_the_url(
    month: Month, ig_lead: ConsoleUser, db: Database
) -> None:
    with db.transaction() as session:
        la02 = session.scalars(select(AuditRecord).where(AuditRecord.agent_org == "LA02")).all()
    assert la02  # LA02 did register a child and record consent
    number = month.other_child.number
    assert ig_lead.get("/console/access-log?organisation=LA02").status_code == 200
    assert "0 events" in ig_lead.last_page
    assert ig_lead.get(f"/console/access-log?nhs_number={number}").status_code == 200
    assert "0 events" in ig_lead.last_page
    assert ig_lead.get(f"/console/child?nhs_number={number}").status_code == 404
    csv = ig_lead.get("/console/access-log.csv?organisation=LA02").get_data(as_text=True)
    assert csv.count("\r\n") == 1  # the header only
    review = ig_lead.post(
        f"/console/reviews/{la02[0].event_id}",
        {"note": "Looking at LA02's event."},
        form_page="/console/sign-out",
    )
    assert review.status_code == 404
    rows = list(
        csv_module.reader(
            io.StringIO(ig_lead.get("/console/access-log.csv").get_data(as_text=True))
        )
    )
    assert rows[1:] and [r for r in rows[1:] if "LA01" not in (r[2], r[13])] == []
    assert [",".join(r) for r in rows if number in ",".join(r)] == []


def test_security_headers_and_cookie_flags(
    month: Month, ig_lead: ConsoleUser, app: Flask, clock: FrozenClock
) -> None:
    page = ig_lead.get(f"/console/child?nhs_number={month.child.number}")
    csp = page.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ):
        assert directive in csp
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Frame-Options"] == "DENY"
    login = app.test_client().get("/console/login")
    assert login.status_code == 200
    fresh = ConsoleUser(app.test_client(), clock, username="dco@icb01")
    response = fresh.post("/console/login", {"username": "dco@icb01", "password": EXAMPLE_PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback; see the https test
    https = app.test_client().get("/console/login", base_url="https://console.example")
    assert "__Host-console-pre=" in https.headers["Set-Cookie"]
    assert "Secure" in https.headers["Set-Cookie"]


def test_pages_showing_personal_data_are_audited(
    month: Month, ig_lead: ConsoleUser, db: Database
) -> None:
    before = len(_events(db, "console:page-view"))
    ig_lead.get(f"/console/child?nhs_number={month.child.number}")
    ig_lead.get(f"/console/access-log?nhs_number={month.child.number}")
    ig_lead.get("/console/reviews")
    views = _events(db, "console:page-view")[before:]
    assert [v.agent_user for v in views] == ["ig.lead@la01"] * 3
    assert views[0].patient_id == views[1].patient_id is not None
    assert '"valueString":"child-view"' in views[0].payload
    ig_lead.get(f"/console/access-log.csv?nhs_number={month.child.number}")
    (export,) = _events(db, "operator:audit-export")
    assert export.agent_user == "ig.lead@la01"
    assert month.child.number not in export.payload


def test_control_characters_anywhere_in_a_console_request_are_400(
    month: Month, app: Flask, clock: FrozenClock
) -> None:
    """A NUL in a URL part reached PostgreSQL, which cannot compare it: a 503 for a request
    that is simply bad. Every console request with a control character is now refused
    before any work: in the path, the query string or a posted form."""
    admin = person(app, clock, "admin@icb01")
    for path in (
        "/console/registry/users/a%00b/disable",
        "/console/registry/clients/a%00b/disable",
        "/console/registry/users/a%00b/reset-authenticator",
        "/console/agreements/a%01b/terminate",
    ):
        refused = admin.post(path, {}, form_page="/console/registry")
        assert refused.status_code == 400, path
        assert "The request could not be read" in admin.last_page
    form = {"ods": "A\x00B", "name": "Nul Trust", "role": "la"}
    posted = admin.post("/console/registry/organisations", form, form_page="/console/registry")
    assert posted.status_code == 400
    assert "Nul Trust" not in admin.get("/console/registry").get_data(as_text=True)
    assert admin.get("/console/agreements?changed=%1b[31m").status_code == 400
    assert app.test_client().get("/console/login?next=%00").status_code == 400
    # Tab, CR and LF are what a textarea sends: still allowed.
    assert admin.get("/console/agreements?changed=a%0D%0Ab%09c").status_code == 200
