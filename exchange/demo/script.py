"""The demo's story (`exchange demo`, issue 12), told through the real API — the WSGI app on
the real database, store and keys, each client authenticating with its demo key at the token
endpoint — and printed step by step.

Six weeks cannot pass while a demo runs, so the story is replayed on its own clock: it
begins seven weeks ago and each step happens on its day (the token endpoint, the statutory
clock and the audit trail all read that clock), ending today with the month's six-week
report. Three children:

- Alex: consent, a request to PRV01, accepted, started, advice uploaded, completed on time,
  retrieved by the LA;
- Sam: advice completed, then the parent withdraws consent, so the LA's next read is
  refused; the ICB, quality-assuring the draft plan, reads it under break-glass
  (safeguarding) with its justification, flagged for IG review;
- Jo: a request to PRV02 completed late with a clock exception (a missed appointment), and
  one to PRV01 forwarded to the ICB and still open, so overdue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from flask import Flask

from exchange.clock import london_date
from exchange.demo.story import CB, CHILDREN, LA, NHS, ODS, Story, coded

LONDON: Final = ZoneInfo("Europe/London")
PROVIDER, ICB, IG = "prv01-epr", "icb01-dco", "la01-ig"
#: PRV02 has no client in the demo set: the script registers one (see `demo.setup`).
OTHER_PROVIDER: Final = "prv02-epr"
JUSTIFICATION: Final = (
    "Safeguarding strategy meeting today: the DCO needs the health advice to assess risk."
)


class StoryClock:
    """The story's clock: it stands still between steps and only moves forward."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def move_to(self, moment: datetime) -> None:
        """Go to `moment` (never back)."""
        self.current = max(self.current, moment)


@dataclass(frozen=True)
class Timeline:
    """The story's days: requests received on `received` fall due on `due`, ten days ago."""

    today: date

    @property
    def due(self) -> date:
        """When the requests fall due."""
        return self.today - timedelta(days=10)

    @property
    def received(self) -> date:
        """When they were received: six weeks before."""
        return self.due - timedelta(days=42)

    @property
    def start(self) -> datetime:
        """When the story begins (the demo set is loaded then)."""
        return self.at(self.received, 8)

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        """A London wall-clock moment, in UTC (as every clock of the service answers)."""
        return datetime.combine(day, time(hour, minute), tzinfo=LONDON).astimezone(UTC)


def run_script(
    app: Flask,
    keys: dict[str, Path],
    token_url: str,
    clock: StoryClock,
    say: Callable[[str], None],
    now: datetime,
) -> None:
    """Tell the story on `clock` (the app's), from seven weeks before `now` to `now`,
    printing each step."""
    story = Story(app.test_client(), keys, token_url, clock, say)
    days = Timeline(london_date(now))
    _the_requests(story, days)
    _the_work(story, days)
    _the_report(story, days, now)


def _the_requests(story: Story, days: Timeline) -> None:
    story.step(
        days.at(days.received, 9), "LA01 and the providers obtain tokens with their demo keys"
    )
    for name in CHILDREN:
        patient = story.register(name)
        story.say(
            f"            LA01 registers {name} (Patient/{patient['id']}) and records the "
            f"parent's consent to share for EHC needs assessment advice "
            f"(Consent/{story.made[f'{name}-consent']['id']})"
        )
    story.step(days.at(days.received, 10), "LA01 asks for health advice, due in 6 weeks:")
    for name, owner, key in (
        ("Alex", "PRV01", "alex"),
        ("Sam", "PRV01", "sam"),
        ("Jo", "PRV02", "jo"),
        ("Jo", "PRV01", "jo-forwarded"),
    ):
        task = story.request(name, owner, key)
        story.say(
            f"            {name} -> {owner}: Task/{task['id']}, "
            f"due {task['restriction']['period']['end']}"
        )


def _the_work(story: Story, days: Timeline) -> None:
    received, due = days.received, days.due
    story.step(days.at(received + timedelta(days=2), 9), "PRV01 accepts Alex's request")
    story.change("alex", PROVIDER, "accept", status="accepted")
    story.step(
        days.at(received + timedelta(days=3), 11),
        "PRV01 does not know Jo and forwards that request to the ICB's health advisers "
        "(the LA's clock keeps running)",
    )
    story.change(
        "jo-forwarded",
        PROVIDER,
        "forward",
        owner={"identifier": {"system": ODS, "value": "ICB01"}},
        statusReason=coded("task-status-reason", "forwarded"),
    )
    story.step(days.at(received + timedelta(days=9), 9), "PRV01 starts work on Alex's advice")
    story.change("alex", PROVIDER, "start", status="in-progress")
    story.step(
        days.at(due - timedelta(days=8), 16),
        "PRV02 records a clock exception for Jo: the family missed the appointment (reg 8(2))",
    )
    story.change(
        "jo",
        OTHER_PROVIDER,
        "clock exception",
        output=[
            {
                "type": coded("task-output-type", "clock-exception"),
                "valueCodeableConcept": coded("clock-exception-reason", "missed-appointment"),
            }
        ],
        note=[{"text": "Appointment missed; rebooked for the earliest clinic."}],
    )
    story.step(
        days.at(due - timedelta(days=5), 14),
        "PRV01 uploads Alex's advice, encrypted, and completes the request",
    )
    document = story.upload("Alex", "alex", PROVIDER, "Community paediatric advice (demo)")
    story.complete("alex", PROVIDER)
    url = document["content"][0]["attachment"]["url"]
    story.say(f"            DocumentReference/{document['id']} -> {url}")
    story.step(days.at(due - timedelta(days=4), 9), "LA01 retrieves Alex's advice")
    read = story.call(
        "GET", f"/fhir/{document['content'][0]['attachment']['url']}", LA, 200, "read"
    )
    story.say(f"            {len(read.data)} bytes, {read.headers['Repr-Digest']}")
    story.step(
        days.at(due - timedelta(days=3), 15), "PRV01 uploads Sam's advice and completes the request"
    )
    sam_advice = story.upload("Sam", "sam", PROVIDER, "Speech and language therapy advice (demo)")
    story.complete("sam", PROVIDER)
    consent = story.made["Sam-consent"]
    story.step(
        days.at(due - timedelta(days=2), 10), "Sam's parent withdraws consent; LA01 records it"
    )
    story.call(
        "PUT",
        f"/fhir/Consent/{consent['id']}",
        LA,
        200,
        "withdraw consent",
        json={**consent, "status": "inactive"},
        headers={"If-Match": f'W/"{consent["meta"]["versionId"]}"'},
    )
    refused = story.call(
        "GET", f"/fhir/DocumentReference/{sam_advice['id']}", LA, 403, "refused read"
    )
    reason = refused.get_json()["issue"][0]["details"]["coding"][0]["code"]
    story.say(f"            LA01 tries to read Sam's advice: 403 {reason} (audited)")
    story.step(
        days.at(due + timedelta(days=1), 9),
        "LA01 asks the ICB's DCO to quality-assure Sam's draft plan",
    )
    story.request(
        "Sam",
        "ICB01",
        "sam-qa",
        code={
            "coding": [{"system": f"{CB}/CodeSystem/task-type", "code": "dco-quality-assurance"}]
        },
        reasonCode=None,
    )
    story.step(
        days.at(due + timedelta(days=2), 11),
        "ICB01 reads Sam's advice under break-glass (safeguarding), with its justification",
    )
    story.call(
        "GET",
        f"/fhir/DocumentReference/{sam_advice['id']}",
        ICB,
        200,
        "break-glass read",
        headers={"X-Purpose-Of-Use": "safeguarding", "X-Justification": JUSTIFICATION},
    )
    story.say(f'            "{JUSTIFICATION}" (flagged for IG review)')
    story.step(
        days.at(due + timedelta(days=3), 15),
        "PRV02 uploads Jo's advice and completes the request, 3 days late",
    )
    story.upload("Jo", "jo", OTHER_PROVIDER, "Child and adolescent mental health advice (demo)")
    story.complete("jo", OTHER_PROVIDER)


def _the_report(story: Story, days: Timeline, now: datetime) -> None:
    month = f"{days.due.year:04d}-{days.due.month:02d}"
    story.step(now, f"ICB01's DCO runs the six-week report for {month}:")
    report = story.json("GET", f"/fhir/Task/$six-week-report?period={month}", ICB, 200, "report")
    counts = {
        group["code"]["coding"][0]["code"]: group.get("population", [{}])[0].get("count")
        for group in report["group"]
    }
    (score,) = [
        g for g in report["group"] if g["code"]["coding"][0]["code"] == "percent-within-6-weeks"
    ]
    percent = score.get("measureScore", {}).get("value")
    story.say(
        f"            {counts['due-in-period']} due, {counts['completed-within-6-weeks']} within "
        f"6 weeks ({percent if percent is not None else '-'}%), {counts['completed-late']} late, "
        f"{counts['late-with-clock-exception']} late with a clock exception, "
        f"{counts['outstanding-overdue']} outstanding and overdue; "
        f"{len(report.get('evaluatedResource', []))} exception(s) listed"
    )
    number = CHILDREN["Sam"][0]
    events = story.json(
        "GET", f"/fhir/AuditEvent?patient.identifier={NHS}|{number}&_count=100", IG, 200, "audit"
    )
    story.say(
        f"            LA01's IG lead finds {events['total']} audit event(s) about Sam, "
        "the refused read among them"
    )
