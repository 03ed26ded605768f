"""Synthetic advice requests, written the way the service writes them: `store_task` at the
moment of receipt, and each later change decided by the workflow's own rules
(`workflow.check_change`) and stored by `service.apply_change`, at the instant it happens.

Only the advice documents are not uploaded: a completion's output points at a document the
generator says exists (the workflow asks a lookup whether it is the owner's advice for the
Task; here the lookup answers from what the generator "uploaded"). Everything the six-week
report reads — the rows and the Task resources — is what the service would have stored.

Requests have every fate the report counts (on time, late with and without a clock
exception, rejected for each reason, cancelled, forwarded, still open), receipts and
completions pinned at Europe/London midnights (including BST changes), and the other task
types that must not be counted. Events after `until` do not happen: the request is left as
it stood then.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from exchange.advice_requests.models import TaskRow
from exchange.advice_requests.service import apply_change, store_task
from exchange.advice_requests.workflow import OWNER, REQUESTER, Document, check_change
from exchange.agreements.models import Organisation
from exchange.patients.models import Patient
from exchange.patients.service import register
from tests.factories import CB, nhs_number, output, patient_json, status_reason, task_json

LONDON = ZoneInfo("Europe/London")
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
#: Requesting LAs, and the owners each may ask (providers and ICBs).
REQUESTERS = ("LA01", "LA02")
OWNERS = ("PRV01", "PRV02", "ICB01", "PRV03")
NOT_KNOWN = [
    output("not-on-waiting-list", valueBoolean=True),
    output("not-seen-in-last-12-months", valueBoolean=True),
]
CLOCK_EXCEPTIONS = (
    "exceptional-personal-circumstances",
    "absent-from-area-4-weeks",
    "missed-appointment",
)


def london(day: date, at: time = time(12)) -> datetime:
    """The UTC instant of a Europe/London wall-clock time."""
    return datetime.combine(day, at, tzinfo=LONDON).astimezone(UTC)


def midnights(first: date, last: date) -> list[date]:
    """The first day of every month from `first` to `last`."""
    days, day = [], first.replace(day=1)
    while day <= last:
        days.append(day)
        day = (day + timedelta(days=32)).replace(day=1)
    return days


@dataclass
class Synthesiser:
    """Writes requests for the registered LAs and owners, each change at its own instant."""

    session: Session
    until: datetime
    rng: random.Random
    owners: tuple[str, ...] = OWNERS
    organisations: dict[str, Organisation] = field(default_factory=dict)
    patients: dict[str, list[Patient]] = field(default_factory=dict)
    documents: dict[str, Document] = field(default_factory=dict)
    created: list[TaskRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.organisations = {o.ods: o for o in self.session.scalars(select(Organisation))}
        seed = 900_000
        for la in REQUESTERS:
            self.patients[la] = []
            for _ in range(12):
                seed += 1
                registration = register(
                    self.session,
                    patient_json(nhs_number(seed), "2016-05-04"),
                    self.organisations[la].id,
                    datetime(2025, 1, 6, tzinfo=UTC),
                )
                self.patients[la].append(registration.patient)

    # -- receipt and changes -------------------------------------------------------------

    def receive(
        self,
        at: datetime,
        la: str,
        owner: str,
        *,
        task_type: str = "ehcna-health-advice",
        reason: str | None = "6-1-c",
        **extra: Any,
    ) -> TaskRow:
        """An LA's request, received at `at`."""
        patient = self.rng.choice(self.patients[la])
        resource = task_json(str(patient.id), owner, task_type=task_type, reason=reason, **extra)
        resource["identifier"][0]["value"] = f"EHC-{len(self.created):05d}"
        row = store_task(
            self.session, resource, patient, self.organisations[la], self.organisations[owner], at
        )
        self.created.append(row)
        return row

    def change(
        self, row: TaskRow, at: datetime, who: str, edit: Callable[[dict[str, Any]], None]
    ) -> bool:
        """Make a change at `at`, if that is not after `until` (else nothing, and False)."""
        if at > self.until:
            return False
        resource = copy.deepcopy(row.resource)
        edit(resource)
        change = check_change(row.resource, resource, {who}, str(row.id), self.documents.get)
        new_owner = self.organisations[change.new_owner] if change.new_owner else None
        apply_change(self.session, row, resource, change, new_owner, at)
        return True

    def status(self, row: TaskRow, at: datetime, status: str) -> bool:
        """Accept or start."""
        return self.change(row, at, OWNER, lambda r: r.update(status=status))

    def complete(self, row: TaskRow, at: datetime) -> bool:
        """The owner uploads its advice and completes the request."""
        reference = f"DocumentReference/{len(self.documents):06d}"
        owner = row.resource["owner"]["identifier"]["value"]
        kind = "dco-qa-feedback" if row.task_type == "dco-quality-assurance" else "health-advice"
        self.documents[reference] = Document(kind, owner, frozenset({str(row.id)}))

        def edit(resource: dict[str, Any]) -> None:
            resource["status"] = "completed"
            resource.setdefault("output", []).append(
                output("advice", valueReference={"reference": reference})
            )

        return self.change(row, at, OWNER, edit)

    def reject(self, row: TaskRow, at: datetime, reason: str) -> bool:
        """The owner rejects, with what the reason needs."""

        def edit(resource: dict[str, Any]) -> None:
            resource["status"] = "rejected"
            resource["statusReason"] = status_reason(reason)
            if reason == "not-known-to-service":
                resource.setdefault("output", []).extend(copy.deepcopy(NOT_KNOWN))
            else:
                resource.setdefault("note", []).append(
                    {"text": "Written reasons: this request is not one we can meet."}
                )

        return self.change(row, at, OWNER, edit)

    def cancel(self, row: TaskRow, at: datetime) -> bool:
        """The LA withdraws the request."""

        def edit(resource: dict[str, Any]) -> None:
            resource["status"] = "cancelled"
            resource["statusReason"] = status_reason("withdrawn-by-requester")

        return self.change(row, at, REQUESTER, edit)

    def forward(self, row: TaskRow, at: datetime, to: str) -> bool:
        """The owner passes the request on (the due date stays)."""

        def edit(resource: dict[str, Any]) -> None:
            resource["status"] = "requested"
            resource["statusReason"] = status_reason("forwarded")
            resource["owner"] = {"identifier": {"system": ODS, "value": to}}

        return self.change(row, at, OWNER, edit)

    def clock_exception(self, row: TaskRow, at: datetime) -> bool:
        """The owner records a reg 8(2) exception while the request is open."""
        code = self.rng.choice(CLOCK_EXCEPTIONS)

        def edit(resource: dict[str, Any]) -> None:
            resource.setdefault("output", []).append(
                output(
                    "clock-exception",
                    valueCodeableConcept={
                        "coding": [
                            {"system": f"{CB}/CodeSystem/clock-exception-reason", "code": code}
                        ]
                    },
                )
            )
            resource.setdefault("note", []).append({"text": "Family away; appointment moved."})

        return self.change(row, at, OWNER, edit)

    # -- fates -----------------------------------------------------------------------------

    def one_request(self, at: datetime) -> None:
        """A counted request with a random fate, its events in order."""
        la = self.rng.choice(REQUESTERS)
        owner = self.rng.choice(self.owners)
        row = self.receive(at, la, owner, reason=self.rng.choice(("6-1-c", "6-1-f", "6-1-h")))
        due = row.due_date
        fate = self.rng.choices(
            [
                "on-time",
                "due-day",
                "late",
                "late-ce",
                "on-time-ce",
                "reject",
                "cancel",
                "forward",
                "open",
            ],
            weights=[30, 6, 12, 8, 3, 14, 5, 10, 12],
        )[0]
        step = at + timedelta(days=self.rng.randint(1, 6), hours=self.rng.randint(0, 9))
        if self.rng.random() < 0.7 and not self.status(row, step, "accepted"):
            return
        if fate == "on-time":
            self.complete(row, london(due - timedelta(days=self.rng.randint(0, 30)), time(15)))
        elif fate == "due-day":
            # The last minute of the due day is on time; the first of the next day is late.
            last = self.rng.random() < 0.5
            day = due if last else due + timedelta(days=1)
            self.complete(row, london(day, time(23, 59) if last else time(0, 0)))
        elif fate in ("late", "late-ce", "on-time-ce"):
            if fate != "late" and not self.clock_exception(row, london(due - timedelta(days=3))):
                return
            offset = -2 if fate == "on-time-ce" else self.rng.randint(1, 40)
            self.complete(row, london(due + timedelta(days=offset), time(10)))
        elif fate == "reject":
            reason = self.rng.choice(
                ["not-known-to-service"] * 3
                + ["wrong-service", "incompatible-with-duties", "adverse-effect-on-functions"]
            )
            self.reject(row, step + timedelta(days=self.rng.randint(0, 50)), reason)
        elif fate == "cancel":
            self.cancel(row, step + timedelta(days=self.rng.randint(0, 50)))
        elif fate == "forward":
            to = "ICB01" if owner != "ICB01" else "PRV01"
            if not self.forward(row, step + timedelta(hours=2), to):
                return
            then = self.rng.choice(["on-time", "late", "open"])
            if then != "open":
                days = -self.rng.randint(0, 20) if then == "on-time" else self.rng.randint(1, 15)
                self.complete(row, london(due + timedelta(days=days), time(11)))
        elif self.rng.random() < 0.5:
            self.status(row, step + timedelta(days=1), "in-progress")

    def not_counted(self, at: datetime) -> None:
        """Requests the report must leave out: annual reviews, QA and tribunal responses."""
        la = self.rng.choice(REQUESTERS)
        kind = self.rng.choice(["annual-review", "qa", "tribunal"])
        if kind == "annual-review":
            due = (at + timedelta(days=20)).date().isoformat()
            row = self.receive(
                at, la, "PRV01", reason="annual-review", restriction={"period": {"end": due}}
            )
        else:
            task_type = "dco-quality-assurance" if kind == "qa" else "tribunal-health-response"
            row = self.receive(at, la, "ICB01", task_type=task_type, reason=None)
        if self.rng.random() < 0.5:
            self.complete(row, at + timedelta(days=self.rng.randint(10, 60)))


def generate(
    session: Session,
    first: date,
    last: date,
    count: int,
    until: datetime,
    seed: int = 6,
    owners: tuple[str, ...] = OWNERS,
) -> Synthesiser:
    """`count` counted requests received from `first` to `last` (a tenth as many that are
    not counted), at random London times and at every month boundary's last and first
    minute; their changes up to `until`."""
    synthesiser = Synthesiser(session, until, random.Random(seed), owners)
    span = (last - first).days + 1
    instants = []
    for boundary in midnights(first + timedelta(days=1), last):
        instants += [
            london(boundary - timedelta(days=1), time(23, 59)),
            london(boundary, time(0, 0)),
        ]
    while len(instants) < count:
        day = first + timedelta(days=synthesiser.rng.randrange(span))
        instants.append(
            london(day, time(synthesiser.rng.randint(7, 19), synthesiser.rng.randint(0, 59)))
        )
    for at in sorted(instants):
        synthesiser.one_request(at)
    for number in range(count // 10):
        synthesiser.not_counted(
            london(first + timedelta(days=number * span // max(1, count // 10)))
        )
    session.flush()
    return synthesiser
