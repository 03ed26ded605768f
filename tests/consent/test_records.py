"""Reading stored Consents into the decision's input: the spec's examples, every performer
form, and anything missing or unknown becoming None rather than an error."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from exchange.clock import LONDON
from exchange.codes import (
    ODS_SYSTEM,
    CapacityAssessmentOutcome,
    CapacityAssessmentType,
    DecisionMakerBasis,
)
from exchange.consent.records import (
    UNDATED,
    CapacityAssessment,
    consent_record,
    parse_instant,
)
from exchange.fhir.validation import model_class
from tests.consent.test_decision import PATIENT_ID, consent_json

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "spec" / "examples"
PARENT_PATIENT = "3f9a3c1e-6f5b-4d0e-9a53-0d6a1f0c2b11"
CHILD_PATIENT = "8c2d7a90-1b6e-4c3f-a2d4-5e7f8a9b0c12"


def example(name: str) -> dict[str, Any]:
    """One of the spec's example resources."""
    resource: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return resource


def test_parent_example() -> None:
    record = consent_record(example("consent-parent.json"), "c1", PARENT_PATIENT)
    assert record.id == "c1"
    assert record.status == "active"
    assert record.date_time == datetime(2026, 10, 1, 9, 30, tzinfo=UTC)
    assert record.maker.basis is DecisionMakerBasis.PARENTAL_RESPONSIBILITY
    assert record.maker.performer == "related-person"
    assert record.maker.relationship == "parent-with-pr"
    assert (record.maker.relationship_start, record.maker.relationship_end) == (None, None)
    assert record.maker.organisation is None
    assert record.maker.assessment is None
    assert record.provision_type == "permit"
    assert record.purposes == {"ehcna-advice", "dco-quality-assurance"}
    assert record.period_start == datetime(2026, 10, 1, tzinfo=LONDON)
    assert record.period_end == datetime(2027, 10, 1, 23, 59, 59, 999999, tzinfo=LONDON)
    assert record.actors is None
    assert record.assessments == ()


def test_gillick_child_refusal_example() -> None:
    record = consent_record(example("consent-gillick-child-refusal.json"), "c2", CHILD_PATIENT)
    gillick = CapacityAssessment(
        CapacityAssessmentType.GILLICK, CapacityAssessmentOutcome.COMPETENT, date(2026, 9, 20)
    )
    assert record.maker.basis is DecisionMakerBasis.GILLICK_COMPETENT_CHILD
    assert record.maker.performer == "patient"
    assert record.maker.relationship is None
    assert record.maker.assessment == gillick
    assert record.assessments == (gillick,)
    assert record.provision_type == "deny"
    assert record.purposes == {"ehcna-advice"}
    assert (record.period_start, record.period_end) == (None, None)


def test_the_patient_performer_must_be_the_subject() -> None:
    record = consent_record(example("consent-gillick-child-refusal.json"), "c2", "someone-else")
    assert record.maker.performer == "unknown"


def test_examples_are_structurally_valid_r4() -> None:
    for name in ("consent-parent.json", "consent-gillick-child-refusal.json"):
        model_class("Consent").model_validate(example(name))


def _with_performer(
    performer: dict[str, Any], relationship: str | None = "local-authority-care-order"
) -> dict[str, Any]:
    resource = consent_json("2026-10-01", by="la")
    resource["performer"] = [performer]
    if relationship is None:
        resource["extension"][0]["extension"] = resource["extension"][0]["extension"][:1]
    return resource


LA_IDENTIFIER = {"system": ODS_SYSTEM, "value": "LA001"}


@pytest.mark.parametrize(
    ("performer", "expected"),
    [
        ({"identifier": LA_IDENTIFIER}, ("organization", "LA001")),
        ({"type": "Organization", "identifier": LA_IDENTIFIER}, ("organization", "LA001")),
        ({"reference": "Organization/123", "identifier": LA_IDENTIFIER}, ("organization", "LA001")),
        ({"reference": "Organization/123"}, ("unknown", None)),
        ({"type": "RelatedPerson", "identifier": LA_IDENTIFIER}, ("unknown", None)),
        ({"identifier": {"system": "urn:other", "value": "LA001"}}, ("unknown", None)),
        ({"reference": "#nobody"}, ("unknown", None)),
        ({"reference": "Practitioner/1"}, ("unknown", None)),
    ],
)
def test_performer_forms(performer: dict[str, Any], expected: tuple[str, str | None]) -> None:
    maker = consent_record(_with_performer(performer), "c1", PATIENT_ID).maker
    assert (maker.performer, maker.organisation) == expected
    if maker.performer == "organization":
        assert maker.relationship == "local-authority-care-order"


def test_organisation_without_relationship() -> None:
    maker = consent_record(
        _with_performer({"identifier": LA_IDENTIFIER}, relationship=None), "c1", PATIENT_ID
    ).maker
    assert (maker.performer, maker.relationship) == ("organization", None)


def test_related_person_period_as_london_dates() -> None:
    resource = consent_json(
        "2026-10-01",
        by="emergency-protection-order",
        relationship_period=("2026-09-30T23:30:00Z", "2026-10-08"),
    )
    maker = consent_record(resource, "c1", PATIENT_ID).maker
    assert (maker.relationship_start, maker.relationship_end) == (
        date(2026, 10, 1),
        date(2026, 10, 8),
    )


def test_relationship_code_needs_its_own_system() -> None:
    resource = consent_json("2026-10-01")
    resource["contained"][0]["relationship"] = [
        {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"},
                {
                    "system": "https://fhir.send-exchange.example/CodeSystem/young-person-representative",
                    "code": "parent-with-pr",
                },
            ]
        }
    ]
    assert consent_record(resource, "c1", PATIENT_ID).maker.relationship is None


def test_actors() -> None:
    restricted = consent_record(
        consent_json("2026-10-01", actors=["RXX01", "RYY02"]), "c1", PATIENT_ID
    )
    assert restricted.actors == frozenset({"RXX01", "RYY02"})
    resource = consent_json("2026-10-01", actors=["RXX01"])
    resource["provision"]["actor"][0]["reference"] = {"reference": "Organization/1"}
    assert (
        consent_record(resource, "c1", PATIENT_ID).actors == frozenset()
    )  # restricts, fails closed
    resource["provision"]["actor"][0]["role"]["coding"][0]["code"] = "PRCP"
    assert consent_record(resource, "c1", PATIENT_ID).actors is None


@pytest.mark.parametrize(
    ("observation", "counts"),
    [
        ({}, True),
        ({"effectiveDateTime": "2026-09"}, False),  # less precise than a day
        ({"status": "entered-in-error"}, False),
        (
            {
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": "https://fhir.send-exchange.example/CodeSystem/capacity-assessment-outcome",
                            "code": "has-capacity",
                        }
                    ]
                }
            },
            False,
        ),  # an MCA outcome on a Gillick assessment
        ({"code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}]}}, False),
    ],
)
def test_assessment_parsing(observation: dict[str, Any], counts: bool) -> None:
    resource = consent_json(
        "2026-10-01", by="self", assessments=[("gillick", "competent", "2026-09-20")]
    )
    resource["contained"][0].update(observation)
    record = consent_record(resource, "c1", PATIENT_ID)
    assert (record.assessments != ()) is counts
    assert (record.maker.assessment is not None) is counts


def test_assessment_effective_is_the_london_date() -> None:
    resource = consent_json(
        "2026-10-01", by="self", assessments=[("gillick", "competent", "2026-09-19T23:30:00Z")]
    )
    assert consent_record(resource, "c1", PATIENT_ID).assessments[0].effective == date(2026, 9, 20)


def test_missing_parts_become_none() -> None:
    resource = consent_json("2026-10-01")
    del resource["dateTime"], resource["extension"], resource["provision"]["type"]
    record = consent_record(resource, "c1", PATIENT_ID)
    assert record.date_time == UNDATED
    assert record.maker.basis is None
    assert record.provision_type == "deny"  # what does not say permit never grants access
    resource = consent_json("2026-10-01", basis="aunt")
    assert consent_record(resource, "c1", PATIENT_ID).maker.basis is None


@pytest.mark.parametrize(
    "path",
    [
        ("status",),
        ("dateTime",),
        ("extension",),
        ("performer",),
        ("contained",),
        ("provision",),
        ("provision", "type"),
        ("provision", "purpose"),
        ("provision", "period"),
        ("patient",),
    ],
)
def test_never_raises_on_a_missing_element(path: tuple[str, ...]) -> None:
    for name, patient in (
        ("consent-parent.json", PARENT_PATIENT),
        ("consent-gillick-child-refusal.json", CHILD_PATIENT),
    ):
        resource = copy.deepcopy(example(name))
        parent = resource
        for key in path[:-1]:
            parent = parent.get(key, {})
        parent.pop(path[-1], None)
        consent_record(resource, "c1", patient)


@pytest.mark.parametrize(
    ("value", "end", "expected"),
    [
        ("2026-10-01", False, datetime(2026, 10, 1, tzinfo=LONDON)),
        ("2026-10-01", True, datetime(2026, 10, 1, 23, 59, 59, 999999, tzinfo=LONDON)),
        ("2026-02", True, datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=LONDON)),
        ("2026", False, datetime(2026, 1, 1, tzinfo=LONDON)),
        ("2026", True, datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=LONDON)),
        ("2026-10-01T10:30:00+01:00", False, datetime(2026, 10, 1, 9, 30, tzinfo=UTC)),
        ("2026-10-01T09:30:00.123Z", True, datetime(2026, 10, 1, 9, 30, 0, 123000, tzinfo=UTC)),
        ("2026-13-01", False, None),
        ("yesterday", False, None),
        (None, False, None),
    ],
)
def test_parse_instant(value: str | None, end: bool, expected: datetime | None) -> None:
    assert parse_instant(value, end=end) == expected
