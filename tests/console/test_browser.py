"""The console in a real browser: Playwright driving Debian's Chromium (never a browser of
Playwright's own) against the real app served over HTTP, with axe-core checking every page
for WCAG 2.2 AA problems. Screenshots and the CSV download are kept under
`test-artefacts/console/`.

The flows: an IG lead's first sign-in (new password, authenticator enrolment with the code
computed from the key on the page), filtering the access log to one child, the child view,
the CSV export; an ICB's DCO (also its IG lead) reviewing a break-glass read, the 6-week
dashboard's chart with the month's figures, agreements and the audit verification.
"""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import update
from werkzeug.serving import make_server

from exchange.app import create_app
from exchange.audit.events import Actor
from exchange.db import Database
from exchange.install import prepare_data_directory
from exchange.registry.service import apply_bootstrap
from exchange.registry.specs import parse_bootstrap
from exchange.settings import Settings
from exchange.users.models import ConsoleUser
from exchange.users.totp import code_at
from tests.conftest import Tokens, world_document
from tests.console.conftest import EXAMPLE_PASSWORD, NEW_PASSWORDS
from tests.console.world import JUSTIFICATION, Month, build
from tests.factories import FrozenClock
from tests.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("EXCHANGE_TEST_CHROMIUM", "/usr/bin/chromium"))
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTEFACTS = ROOT / "test-artefacts" / "console"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def _missing(what: str) -> None:
    """Outside CI a developer without the browser skips; CI never does (operations.md)."""
    message = f"{what} is missing: run `make test` (it installs it) or see the Makefile"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _missing(str(CHROMIUM))
    if not AXE.exists():
        _missing(str(AXE.relative_to(ROOT)))
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


@dataclass
class Live:
    """The app served over HTTP on a free loopback port, with its clock and a month."""

    url: str
    clock: FrozenClock
    month: Month
    scenario: Scenario


@pytest.fixture
def live(fresh_database_url: str, tmp_path: Path) -> Iterator[Live]:
    clock = FrozenClock()
    settings = Settings(data_dir=tmp_path / "var", database_url=fresh_database_url)
    prepare_data_directory(settings, clock)
    database = Database(fresh_database_url)
    with database.transaction() as session:
        apply_bootstrap(session, parse_bootstrap(world_document()), clock, Actor.operator())
        session.execute(update(ConsoleUser).values(must_change_password=True))
    app = create_app(settings, clock=clock, database=database)
    scenario = Scenario(app.test_client(), Tokens(app.test_client(), clock))
    month = build(scenario, clock)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{server.server_port}", clock, month, scenario)
    finally:
        server.shutdown()
        thread.join(5)
        database.dispose()


def check_accessibility(page: Page, name: str) -> None:
    """axe-core on the page as it is: no serious or critical WCAG 2.2 AA violation; and a
    screenshot for the record."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    violations: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return result.violations.map(v => ({id: v.id, impact: v.impact,
                nodes: v.nodes.map(n => n.target.join(' '))}));
        }""",
        WCAG_TAGS,
    )
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{name}: {serious}"


def first_sign_in(page: Page, live: Live, username: str, prefix: str) -> None:
    page.goto(f"{live.url}/console/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    check_accessibility(page, f"{prefix}-01-sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(EXAMPLE_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    check_accessibility(page, f"{prefix}-02-new-password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORDS[username])
    page.get_by_label("Confirm the new password").fill(NEW_PASSWORDS[username])
    page.get_by_role("button", name="Save password").click()
    expect(page.get_by_role("heading", name="Set up your authenticator app")).to_be_visible()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    check_accessibility(page, f"{prefix}-03-authenticator")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Security code").fill(code_at(secret, live.clock.now()))
    page.get_by_role("button", name="Finish setting up").click()
    expect(page.get_by_role("heading", name="SEND exchange console")).to_be_visible()
    check_accessibility(page, f"{prefix}-04-home")
    live.clock.advance(seconds=30)


def test_an_ig_lead_signs_in_finds_a_child_and_exports_the_log(
    browser: Browser, live: Live
) -> None:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    first_sign_in(page, live, "ig.lead@la01", "la01")
    child = live.month.child

    page.get_by_role("link", name="Access log").first.click()
    expect(page.get_by_role("heading", name="Access log")).to_be_visible()
    page.get_by_label("Child's NHS number").fill(child.number)
    page.get_by_role("button", name="Filter the log").click()
    table = page.locator("#access-log")
    expect(table).to_be_visible()
    numbers = table.locator("tbody tr td:nth-child(5)").all_inner_texts()
    shown = f"{child.number[:3]} {child.number[3:6]} {child.number[6:]}"
    assert numbers and set(numbers) == {shown}
    check_accessibility(page, "la01-05-access-log-one-child")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download these events as CSV").click()
    download = download_info.value
    target = ARTEFACTS / "la01-access-log.csv"
    download.save_as(str(target))
    with target.open(encoding="utf-8", newline="") as exported:
        rows = list(csv.reader(exported))
    assert rows[0][:3] == ["time", "event", "organisation"]
    assert len(rows) > 1 and {row[6] for row in rows[1:]} == {child.number}

    table.locator("tbody tr").first.get_by_role("link").click()
    expect(page.get_by_role("heading", name=f"Child view: {shown}")).to_be_visible()
    expect(page.locator("#consent-timeline")).to_contain_text("decided")
    expect(page.locator("#requests-table")).to_contain_text("overdue")
    # The note with a script is shown as text, and nothing ran.
    expect(page.locator("#requests-table")).to_contain_text("<script>document.title='pwned'")
    assert page.title() != "pwned"
    expect(page.get_by_role("heading", name="Community paediatric advice")).to_be_visible()
    # LA01 sees its own reads of PRV01's document (ICB01's break-glass read is for ICB01's
    # and PRV01's IG leads: the AuditEvent API's rule).
    accesses = page.locator("section", has_text="Community paediatric advice")
    expect(accesses).to_contain_text("la01-case-system")
    expect(accesses).to_contain_text("allowed")
    check_accessibility(page, "la01-06-child-view")

    page.goto(f"{live.url}/console/agreements")
    check_accessibility(page, "la01-07-agreements")
    page.goto(f"{live.url}/console/reviews")
    check_accessibility(page, "la01-08-review-queue")
    page.goto(f"{live.url}/console/sign-out")
    check_accessibility(page, "la01-09-sign-out")
    page.get_by_role("button", name="Sign out now").click()
    expect(page.get_by_role("heading", name="You have signed out")).to_be_visible()
    context.close()


def test_a_dco_reviews_break_glass_and_reads_the_dashboard(browser: Browser, live: Live) -> None:
    context = browser.new_context()
    page = context.new_page()
    first_sign_in(page, live, "dco@icb01", "icb01")

    page.get_by_role("link", name="Review queue").first.click()
    card = page.locator("section.nhsuk-card", has_text="Break glass")
    expect(card).to_contain_text(JUSTIFICATION)
    check_accessibility(page, "icb01-05-review-queue")
    card.get_by_label("Review note").fill(
        "Checked with the safeguarding lead: strategy meeting minuted, access justified."
    )
    card.get_by_role("button", name="Mark reviewed").click()
    expect(page.get_by_text("The event was marked reviewed")).to_be_visible()
    expect(page.get_by_text("Nothing to review.")).to_be_visible()
    check_accessibility(page, "icb01-06-reviewed")

    page.get_by_role("link", name="6-week dashboard").first.click()
    expect(page.get_by_role("heading", name="6-week dashboard: November 2026")).to_be_visible()
    chart = page.locator("svg#trend-chart")
    expect(chart).to_be_visible()
    expect(chart).to_contain_text("50.0%")
    expect(page.locator("svg#owner-chart")).to_contain_text("PRV01")
    expect(page.locator("#trend-table")).to_contain_text("50.0%")
    expect(page.locator("#overdue-table")).to_contain_text("EHC-2026-00412")
    expect(page.locator("#exceptions-table")).to_contain_text("outstanding overdue")
    check_accessibility(page, "icb01-07-dashboard")

    page.get_by_role("link", name="Requests", exact=True).first.click()
    expect(page.locator("#requests-table")).to_contain_text("EHC-2026-00412")
    page.get_by_label("Type").select_option("dco-quality-assurance")
    page.get_by_role("button", name="Show requests").click()
    expect(page.locator("#requests-count")).to_have_text("1 request.")
    check_accessibility(page, "icb01-08a-requests")

    page.get_by_role("link", name="Audit integrity").first.click()
    check_accessibility(page, "icb01-08-integrity")
    page.get_by_role("button", name="Verify now").click()
    # The page refreshes itself while the verification runs (no JavaScript needed).
    expect(page.get_by_text("Passed: the chain and every checkpoint hold")).to_be_visible(
        timeout=30_000
    )
    check_accessibility(page, "icb01-09-verified")
    context.close()


def test_an_admin_disables_a_client_and_registers_an_organisation(
    browser: Browser, live: Live
) -> None:
    context = browser.new_context()
    page = context.new_page()
    first_sign_in(page, live, "admin@icb01", "admin")
    page.get_by_role("link", name="Organisations, clients and users").first.click()
    expect(page.get_by_role("heading", name="Organisations, clients and users")).to_be_visible()
    check_accessibility(page, "admin-05-registry")
    row = page.locator("#clients-table tr", has_text="la01-case-system")
    row.get_by_role("button", name="Disable la01-case-system").click()
    expect(page.get_by_text("client la01-case-system: updated (enabled)")).to_be_visible()
    expect(page.locator("#clients-table tr", has_text="la01-case-system")).to_contain_text(
        "disabled"
    )
    page.get_by_label("ODS code").fill("PRV77")
    page.get_by_label("Name").fill("Riverside Community Trust")
    page.get_by_label("provider").check()
    page.get_by_role("button", name="Register the organisation").click()
    expect(page.get_by_text("organisation PRV77: created")).to_be_visible()
    expect(page.locator("#organisations-table")).to_contain_text("Riverside Community Trust")
    check_accessibility(page, "admin-06-registered")
    context.close()
