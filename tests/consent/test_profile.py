"""The send-consent profile rules: the spec's examples pass, each broken rule is reported
with its FHIRPath expression, and an invalid decision-maker is a warning, not an error."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from exchange.codes import EXT_DECISION_MAKER, ODS_SYSTEM
from exchange.consent.profile import consent_profile_issues, decision_maker_warning
from exchange.consent.records import consent_record
from exchange.fhir.validation import model_class
from tests.consent.test_decision import PATIENT_ID, consent_json
from tests.consent.test_records import CHILD_PATIENT, example

Mutation = Callable[[dict[str, Any]], None]


@pytest.mark.parametrize("name", ["consent-parent.json", "consent-gillick-child-refusal.json"])
def test_examples_pass(name: str) -> None:
    assert consent_profile_issues(example(name)) == []


@pytest.mark.parametrize(
    "resource",
    [
        consent_json("2026-10-01"),
        consent_json(
            "2026-10-01",
            by="la",
            provision_type="deny",
            actors=["RXX01"],
            period=("2026-10-01", None),
        ),
        consent_json("2026-10-01", by="self", assessments=[("gillick", "competent", "2026-09-20")]),
        consent_json(
            "2026-10-01",
            by="personal-welfare-deputy",
            relationship_period=("2026-01-01", "2027-01-01"),
            assessments=[("mental-capacity-act", "lacks-capacity", "2026-09-20T10:00:00Z")],
        ),
    ],
    ids=["parent", "la", "gillick", "deputy"],
)
def test_factory_consents_pass_r4_and_the_profile(resource: dict[str, Any]) -> None:
    model_class("Consent").model_validate(resource)
    assert consent_profile_issues(resource) == []


def _set(path: str, value: Any) -> Mutation:
    """Set (or, with value None, delete) a dotted path; numbers index lists."""

    def mutate(resource: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = resource
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is None:
            del node[int(last) if last.isdigit() else last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _append(path: str, value: Any) -> Mutation:
    def mutate(resource: dict[str, Any]) -> None:
        node: Any = resource
        for key in path.split("."):
            node = node[int(key)] if key.isdigit() else node[key]
        node.append(copy.deepcopy(value))

    return mutate


PARENT_BROKEN: list[Any] = [
    pytest.param(_set("status", "bogus"), "code-invalid", "Consent.status", id="status"),
    pytest.param(_set("status", None), "required", "Consent.status", id="status-missing"),
    pytest.param(
        _set("scope.coding.0.code", "research"), "code-invalid", "Consent.scope", id="scope"
    ),
    pytest.param(
        _set("category.0.coding.0.code", "64292-6"),
        "code-invalid",
        "Consent.category",
        id="category",
    ),
    pytest.param(_set("category", None), "required", "Consent.category", id="category-missing"),
    pytest.param(
        _set("patient", {"reference": "Group/1"}),
        "value",
        "Consent.patient.reference",
        id="patient",
    ),
    pytest.param(_set("patient", None), "required", "Consent.patient", id="patient-missing"),
    pytest.param(_set("dateTime", None), "required", "Consent.dateTime", id="dateTime-missing"),
    pytest.param(_set("dateTime", "2026-10"), "value", "Consent.dateTime", id="dateTime-month"),
    pytest.param(
        _set("extension", None), "required", "Consent.extension", id="decision-maker-missing"
    ),
    pytest.param(
        _set("extension.0.extension.0.valueCode", "aunt"),
        "code-invalid",
        "Consent.extension[0].extension[0].valueCode",
        id="basis",
    ),
    pytest.param(
        _set("extension.0.extension", [{"url": "relationship", "valueCoding": {"code": "x"}}]),
        "required",
        "Consent.extension[0]",
        id="basis-missing",
    ),
    pytest.param(
        _append(
            "extension.0.extension",
            {
                "url": "relationship",
                "valueCoding": {
                    "system": "https://fhir.send-exchange.example/CodeSystem/parental-responsibility",
                    "code": "aunt",
                },
            },
        ),
        "code-invalid",
        "Consent.extension[0].extension[1].valueCoding",
        id="extension-relationship",
    ),
    pytest.param(
        _append(
            "extension",
            {
                "url": EXT_DECISION_MAKER,
                "extension": [{"url": "basis", "valueCode": "parental-responsibility"}],
            },
        ),
        "invariant",
        "Consent.extension[1]",
        id="two-decision-makers",
    ),
    pytest.param(
        _append(
            "extension.0.extension",
            {"url": "capacityAssessment", "valueReference": {"reference": "#mother"}},
        ),
        "value",
        "Consent.extension[0].extension[1].valueReference",
        id="assessment-reference",
    ),
    pytest.param(
        _set("contained.0.relationship.0.coding.0.code", "aunt"),
        "code-invalid",
        "Consent.contained[0].relationship[0]",
        id="related-person-code",
    ),
    pytest.param(
        _set(
            "contained.0.relationship",
            [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                            "code": "MTH",
                        }
                    ]
                }
            ],
        ),
        "code-invalid",
        "Consent.contained[0].relationship",
        id="related-person-other-system",
    ),
    pytest.param(
        _append("performer", {"reference": "#mother"}),
        "invariant",
        "Consent.performer",
        id="two-performers",
    ),
    pytest.param(_set("performer", None), "required", "Consent.performer", id="performer-missing"),
    pytest.param(
        _set("performer.0", {"reference": "#nobody"}),
        "value",
        "Consent.performer[0].reference",
        id="performer-unresolved",
    ),
    pytest.param(
        _set("performer.0", {"reference": "Practitioner/1"}),
        "value",
        "Consent.performer[0]",
        id="performer-practitioner",
    ),
    pytest.param(
        _set("performer.0", {"reference": "Organization/1"}),
        "required",
        "Consent.performer[0].identifier",
        id="organisation-without-ods",
    ),
    pytest.param(
        _set("performer.0", {"identifier": {"system": ODS_SYSTEM, "value": "LA001"}}),
        "required",
        "Consent.extension",
        id="organisation-without-care-order",
    ),
    pytest.param(_set("provision", None), "required", "Consent.provision", id="provision-missing"),
    pytest.param(
        _set("provision.type", None), "required", "Consent.provision.type", id="type-missing"
    ),
    pytest.param(
        _set("provision.type", "maybe"), "code-invalid", "Consent.provision.type", id="type"
    ),
    pytest.param(
        _set("provision.purpose", None),
        "required",
        "Consent.provision.purpose",
        id="purpose-missing",
    ),
    pytest.param(
        _set("provision.purpose.1.code", "marketing"),
        "code-invalid",
        "Consent.provision.purpose[1]",
        id="purpose-code",
    ),
    pytest.param(
        _set("provision.purpose.0.system", "urn:other"),
        "code-invalid",
        "Consent.provision.purpose[0]",
        id="purpose-system",
    ),
    pytest.param(
        _set("provision.action.0.coding.0.code", "collect"),
        "code-invalid",
        "Consent.provision.action[0]",
        id="action",
    ),
    pytest.param(
        _set(
            "provision.actor",
            [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "PRCP",
                            }
                        ]
                    },
                    "reference": {"identifier": {"system": ODS_SYSTEM, "value": "RXX01"}},
                }
            ],
        ),
        "code-invalid",
        "Consent.provision.actor[0].role",
        id="actor-role",
    ),
    pytest.param(
        _set(
            "provision.actor",
            [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"reference": "Organization/1"},
                }
            ],
        ),
        "required",
        "Consent.provision.actor[0].reference.identifier",
        id="actor-without-ods",
    ),
    pytest.param(
        _set("provision.period", {"start": "2027-10-01", "end": "2026-10-01"}),
        "invariant",
        "Consent.provision.period",
        id="period-reversed",
    ),
    pytest.param(
        _set("provision.provision", [{"type": "deny"}]),
        "not-supported",
        "Consent.provision.provision",
        id="nested-provision",
    ),
]


@pytest.mark.parametrize(("mutate", "code", "expression"), PARENT_BROKEN)
def test_each_broken_rule_is_reported(mutate: Mutation, code: str, expression: str) -> None:
    resource = example("consent-parent.json")
    mutate(resource)
    issues = consent_profile_issues(resource)
    assert (code, (expression,)) in [(issue.code, issue.expression) for issue in issues], issues
    assert all(issue.severity == "error" and issue.diagnostics for issue in issues)


ASSESSMENT_BROKEN: list[Any] = [
    pytest.param(
        _set("contained.0.code.coding.0.code", "iq"),
        "code-invalid",
        "Consent.contained[0].code",
        id="type",
    ),
    pytest.param(
        _set("contained.0.valueCodeableConcept.coding.0.code", "maybe"),
        "code-invalid",
        "Consent.contained[0].valueCodeableConcept",
        id="outcome",
    ),
    pytest.param(
        _set("contained.0.valueCodeableConcept.coding.0.code", "has-capacity"),
        "invariant",
        "Consent.contained[0].valueCodeableConcept",
        id="outcome-of-the-other-type",
    ),
    pytest.param(
        _set("contained.0.valueCodeableConcept", None),
        "required",
        "Consent.contained[0].valueCodeableConcept",
        id="outcome-missing",
    ),
    pytest.param(
        _set("contained.0.effectiveDateTime", None),
        "required",
        "Consent.contained[0].effectiveDateTime",
        id="effective-missing",
    ),
    pytest.param(
        _set("contained.0.effectiveDateTime", "2026-09"),
        "value",
        "Consent.contained[0].effectiveDateTime",
        id="effective-month",
    ),
]


@pytest.mark.parametrize(("mutate", "code", "expression"), ASSESSMENT_BROKEN)
def test_each_broken_assessment_rule_is_reported(
    mutate: Mutation, code: str, expression: str
) -> None:
    resource = example("consent-gillick-child-refusal.json")
    mutate(resource)
    assert (code, (expression,)) in [
        (issue.code, issue.expression) for issue in consent_profile_issues(resource)
    ]


def test_an_invalid_decision_maker_is_not_a_profile_error() -> None:
    # Stored and tagged (consent.md): a parent acting for a young person without an MCA assessment.
    resource = consent_json("2026-10-01", by="parent-acting-for-young-person")
    assert consent_profile_issues(resource) == []
    record = consent_record(resource, "c1", PATIENT_ID)
    warning = decision_maker_warning(date(2009, 1, 15), record, record.assessments)
    assert warning is not None and "lacks capacity" in warning


def test_decision_maker_warning() -> None:
    record = consent_record(example("consent-gillick-child-refusal.json"), "c1", CHILD_PATIENT)
    assert decision_maker_warning(date(2012, 5, 10), record, record.assessments) is None
    warning = decision_maker_warning(date(2012, 5, 10), record, ())
    assert warning is not None and "Gillick" in warning
