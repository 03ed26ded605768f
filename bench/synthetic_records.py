"""One child's synthetic records, as the service would have stored them: the Patient their
LA registered, the consent decisions it recorded, and the advice requests it sent
(`synthetic_requests`), with the audit entry of every one of those interactions.

A child's story is a pure function of (seed, index): the generator can run again to grow
the data and finds the same children where it left them. Rows are tuples in the column
order of `bench.copy_rows.COLUMNS`; JSON columns hold the resources as dicts.

What happens when (ten years of `quality.md`'s national figures): the LA registers the
child and records consent (parental, or the young person's own), then asks one to three
providers for health advice; half the assessments go on to a DCO quality-assurance request
to the ICB, a quarter have an annual review a year later, a few a tribunal response.
Providers accept, start and complete, mostly within the statutory six weeks; some reject
(not known to the service, or with written reasons), LAs cancel a few, and a few requests
are forwarded. An advice request ends with the owner's advice (sometimes two documents);
LAs attach supporting information and draft plans, which the owner reads, and read the
advice they receive. Events after `until` have not happened yet: recent requests are open.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Final

from bench.copy_rows import Rows
from bench.synthetic_audit import AuditEntries, Background
from bench.synthetic_requests import Advice, concept, concept_of
from bench.synthetic_world import Organisation, World, seeded_uuid
from exchange.audit.events import AuditKind, Entity
from exchange.clock import LONDON, london_date
from exchange.codes import (
    DEFAULT_CONSENT_POLICY,
    EXT_DECISION_MAKER,
    NHS_NUMBER_SYSTEM,
    code_system_url,
)
from exchange.consent.calendar import out_of_scope_from, school_leaving_date
from exchange.consent.decision import Decision, decide
from exchange.consent.profile import decision_maker_warning
from exchange.consent.records import consent_record
from exchange.versions import stamp
from tests.factories import nhs_number

YEAR: Final = timedelta(days=365.25)
CONSENT_PURPOSES: Final = ("annual-review", "dco-quality-assurance", "ehcna-advice", "tribunal")
GIVEN_NAMES: Final = ("Alex", "Sam", "Jordan", "Riley", "Charlie", "Jamie", "Morgan", "Casey")
FAMILY_NAMES: Final = ("Example", "Sample", "Testcase", "Placeholder", "Synthetic")
GENDERS: Final = ("male", "female", "male", "female", "other", "unknown")


def _london_midnight(day: Any) -> datetime:
    return datetime.combine(day, time(), tzinfo=LONDON)


@dataclass(slots=True)
class Consent:
    """A recorded Consent: its first version, and its withdrawal if there was one."""

    id: uuid.UUID
    resource: dict[str, Any]
    recorded: datetime
    withdrawn: datetime | None = None
    withdrawn_resource: dict[str, Any] | None = None

    def as_of(self, at: datetime) -> dict[str, Any]:
        """The version current at `at` (the first, for a Consent recorded later: as
        `consent.service.records_as_of` reads it)."""
        if self.withdrawn is not None and self.withdrawn <= at and self.withdrawn_resource:
            return self.withdrawn_resource
        return self.resource


class ChildStory:
    """Writes one child's rows, and offers their audit entries to `audit`."""

    def __init__(
        self,
        world: World,
        seed: int,
        index: int,
        since: datetime,
        until: datetime,
        rows: Rows,
        audit: AuditEntries,
    ) -> None:
        self.world, self.until, self.rows, self.audit = world, until, rows, audit
        self.rng = rng = random.Random(f"{seed}:child:{index}")
        self.patient_id = seeded_uuid(rng)
        self.nhs_number = nhs_number(index)
        self.la = rng.choices(world.las, weights=[la.weight for la in world.las])[0]
        self.agreement = world.agreement_in(self.la.area)
        self.icb = world.icbs[self.la.area]
        self.first_request = since + (until - since) * rng.random()
        self.birth_date = london_date(self.first_request - YEAR * rng.uniform(1.0, 19.5))
        self.registered = self.first_request - timedelta(days=rng.uniform(0.1, 20))
        self.consents: list[Consent] = []
        self.granted: set[tuple[uuid.UUID, str]] = set()
        self.organisations: dict[uuid.UUID, Organisation] = {}
        self.task_ids: list[uuid.UUID] = []

    def write(self) -> None:
        """Write every row of the child's story as it stands at `until`."""
        self._register()
        self._consents()
        self._requests()

    def background(self) -> Background:
        """What the child's audit trail is topped up with."""
        return Background(
            tuple(self.organisations.values()),
            self.la,
            self.nhs_number,
            self.patient_id,
            tuple(self.task_ids),
            self.registered,
            self.until,
        )

    # --- the child --------------------------------------------------------------------------

    def _register(self) -> None:
        rng, at = self.rng, self.registered
        kept = {
            "resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": self.nhs_number}],
            "birthDate": self.birth_date.isoformat(),
            "name": [{"given": [rng.choice(GIVEN_NAMES)], "family": rng.choice(FAMILY_NAMES)}],
            "gender": rng.choice(GENDERS),
        }
        stored = stamp(kept, self.patient_id, 1, at)
        self.rows.add("patient", (self.patient_id, self.nhs_number, self.birth_date))
        self.rows.add(
            "patient_registration",
            (self.patient_id, self.patient_id, self.la.id, True, 1, at, stored),
        )
        self.rows.add("resource_version", ("Patient", self.patient_id, 1, at, stored))
        self.grant(self.la, "registrant", at)
        self.audit.api(at, self.la, AuditKind.CREATE, self.patient_entities(), self.patient_id)

    def grant(self, organisation: Organisation, relationship: str, at: datetime) -> None:
        """`patients.service.grant_access`: the first grant of a relationship stands."""
        self.organisations[organisation.id] = organisation
        if (organisation.id, relationship) not in self.granted:
            self.granted.add((organisation.id, relationship))
            self.rows.add("patient_access", (self.patient_id, organisation.id, relationship, at))

    def patient_entities(self) -> tuple[Entity, ...]:
        """The child as an audit entity."""
        return (Entity(f"Patient/{self.patient_id}", "patient"),)

    def _consents(self) -> None:
        rng = self.rng
        leaves_school = _london_midnight(school_leaving_date(self.birth_date))
        out_of_scope = _london_midnight(out_of_scope_from(self.birth_date))
        first = self.registered + timedelta(minutes=rng.uniform(5, 600))
        young_person = first >= leaves_school
        self._consent(first, own=young_person)
        own_later = leaves_school + timedelta(days=rng.uniform(20, 300))
        if not young_person and own_later < min(self.until, out_of_scope):
            # At the end of compulsory schooling the parents' consent lapses (Children and
            # Families Act 2014 s.83(2)): the young person decides for themself.
            self._consent(own_later, own=True)
        withdrawn = self.consents[-1].recorded + timedelta(days=rng.uniform(30, 900))
        if rng.random() < 0.02 and withdrawn < self.until:
            self._withdraw(self.consents[-1], withdrawn)

    def _consent(self, at: datetime, *, own: bool) -> None:
        rng = self.rng
        consent_id = seeded_uuid(rng)
        patient = f"Patient/{self.patient_id}"
        decided = (at - timedelta(days=rng.uniform(0, 5))).astimezone(LONDON)
        resource: dict[str, Any] = {
            "resourceType": "Consent",
            "status": "active",
            "scope": concept_of(
                "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"
            ),
            "category": [concept_of("http://loinc.org", "59284-0")],
            "patient": {"reference": patient},
            "dateTime": decided.isoformat(timespec="seconds"),
        }
        if own:
            resource["performer"] = [{"reference": patient}]
            basis = "young-person"
        else:
            resource["contained"] = [
                {
                    "resourceType": "RelatedPerson",
                    "id": "maker",
                    "patient": {"reference": patient},
                    "relationship": [concept("parental-responsibility", "parent-with-pr")],
                }
            ]
            resource["performer"] = [{"reference": "#maker"}]
            basis = "parental-responsibility"
        resource["extension"] = [
            {"url": EXT_DECISION_MAKER, "extension": [{"url": "basis", "valueCode": basis}]}
        ]
        resource["provision"] = {
            "type": "permit",
            "action": [
                concept_of("http://terminology.hl7.org/CodeSystem/consentaction", "disclose")
            ],
            "purpose": [
                {"system": code_system_url("purpose"), "code": code} for code in CONSENT_PURPOSES
            ],
        }
        # What `consent.service.record_consent` adds: the default policy and the recorder.
        resource["policy"] = [{"uri": DEFAULT_CONSENT_POLICY}]
        resource["organization"] = [self.la.reference()]
        record = consent_record(resource, str(consent_id), str(self.patient_id))
        warning = decision_maker_warning(self.birth_date, record, record.assessments)
        if warning is not None:  # never for these makers; kept as the service tags it
            resource["meta"] = {
                "tag": [
                    {
                        "system": code_system_url("consent-validity"),
                        "code": "decision-maker-not-valid",
                    }
                ]
            }
        stored = stamp(resource, consent_id, 1, at)
        self.consents.append(Consent(consent_id, stored, at))
        self.rows.add(
            "consent",
            (consent_id, self.patient_id, self.la.id, "active", record.date_time,
             warning is None, False, 1, at, stored),
        )  # fmt: skip
        self.rows.add("resource_version", ("Consent", consent_id, 1, at, stored))
        self.audit.api(
            at, self.la, AuditKind.CREATE, self._consent_entities(consent_id), self.patient_id
        )

    def _consent_entities(self, consent_id: uuid.UUID) -> tuple[Entity, ...]:
        return (Entity(f"Consent/{consent_id}", "consent"), *self.patient_entities())

    def _withdraw(self, consent: Consent, at: datetime) -> None:
        stored = stamp({**consent.resource, "status": "inactive"}, consent.id, 2, at)
        consent.withdrawn, consent.withdrawn_resource = at, stored
        rows = self.rows.tables["consent"]
        first = rows[-1]
        rows[-1] = (*first[:3], "inactive", *first[4:7], 2, at, stored)
        self.rows.add("resource_version", ("Consent", consent.id, 2, at, stored))
        self.audit.api(
            at, self.la, AuditKind.UPDATE, self._consent_entities(consent.id), self.patient_id
        )

    def decision(self, recipient: str, purpose: str, at: datetime) -> Decision:
        """The consent decision for a disclosure at `at` (`consent.service.evaluate`)."""
        records = [
            consent_record(consent.as_of(at), str(consent.id), str(self.patient_id))
            for consent in self.consents
        ]
        records.sort(key=lambda record: record.date_time)
        return decide(self.birth_date, records, recipient, purpose, at)

    # --- advice requests --------------------------------------------------------------------

    def _requests(self) -> None:
        rng = self.rng
        providers = self.world.area_providers[self.la.area]
        weights = [provider.weight for provider in providers]
        count = rng.choices((1, 2, 3), weights=(0.4, 0.4, 0.2))[0]
        chosen: list[Organisation] = []
        while len(chosen) < count:
            provider = rng.choices(providers, weights=weights)[0]
            if provider not in chosen:
                chosen.append(provider)
        at = self.first_request
        for position, provider in enumerate(chosen):
            reason = "6-1-c" if position == 0 else rng.choice(("6-1-f", "6-1-f", "6-1-h"))
            Advice(self, "ehcna-health-advice", reason, provider, at).write()
            at += timedelta(minutes=rng.uniform(2, 120))
        if rng.random() < 0.5:
            at = self.first_request + timedelta(days=rng.uniform(50, 90))
            Advice(self, "dco-quality-assurance", None, self.icb, at).write()
        if rng.random() < 0.25:
            at = self.first_request + timedelta(days=rng.uniform(330, 400))
            Advice(self, "ehcna-health-advice", "annual-review", chosen[0], at).write()
        if rng.random() < 0.03:
            at = self.first_request + timedelta(days=rng.uniform(120, 400))
            Advice(self, "tribunal-health-response", None, self.icb, at).write()
