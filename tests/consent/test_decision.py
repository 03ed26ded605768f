"""The consent decision: every worked case of consent.md, and the rules behind them.

Consents are written as FHIR JSON (adapted from the spec's examples) and read through
`consent_record`, so these tests exercise the same path as stored Consents.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

import pytest

from exchange.clock import LONDON
from exchange.codes import (
    EXT_DECISION_MAKER,
    ODS_SYSTEM,
    AccessDenialReason,
    ParentalResponsibility,
    YoungPersonRepresentative,
    code_system_url,
)
from exchange.consent.calendar import LifeStage
from exchange.consent.decision import Decision, Ignored, decide
from exchange.consent.explain import explain
from exchange.consent.makers import maker_validity
from exchange.consent.records import ConsentRecord, consent_record

PATIENT_ID = "3f9a3c1e-6f5b-4d0e-9a53-0d6a1f0c2b11"
PROVIDER = "RXX01"
OTHER_PROVIDER = "RYY02"
LA = "LA001"
EHCNA = "ehcna-advice"

Assessment = tuple[str, str, str]  # (type, outcome, effective date)


def _date_time(value: str) -> str:
    """A London date becomes noon London that day; anything longer is used as given."""
    if len(value) == len("YYYY-MM-DD"):
        return datetime.combine(date.fromisoformat(value), time(12), tzinfo=LONDON).isoformat()
    return value


def _period(bounds: tuple[str | None, str | None]) -> dict[str, str]:
    start, end = bounds
    return {key: value for key, value in (("start", start), ("end", end)) if value is not None}


def consent_json(
    made: str,
    *,
    by: str = ParentalResponsibility.PARENT_WITH_PR,
    basis: str | None = None,
    provision_type: str = "permit",
    purposes: Sequence[str] = (EHCNA,),
    status: str = "active",
    period: tuple[str | None, str | None] | None = None,
    relationship_period: tuple[str | None, str | None] | None = None,
    actors: Sequence[str] | None = None,
    assessments: Sequence[Assessment] = (),
    patient_id: str = PATIENT_ID,
) -> dict[str, Any]:
    """A send-consent Consent made on `made` (a London date, or a full dateTime) by `by`:
    a relationship code (a contained RelatedPerson), `self` (the Patient) or `la` (the
    local authority with a care order). The first assessment is the one the extension
    references."""
    patient = f"Patient/{patient_id}"
    contained: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    if by == "self":
        performer: dict[str, Any] = {"reference": patient}
        basis = basis or "gillick-competent-child"
    elif by == "la":
        performer = {"type": "Organization", "identifier": {"system": ODS_SYSTEM, "value": LA}}
        basis = basis or "parental-responsibility"
        parts.append(
            {
                "url": "relationship",
                "valueCoding": {
                    "system": code_system_url("parental-responsibility"),
                    "code": "local-authority-care-order",
                },
            }
        )
    else:
        system = (
            "parental-responsibility"
            if by in set(ParentalResponsibility)
            else "young-person-representative"
        )
        basis = basis or (
            "parental-responsibility"
            if system == "parental-responsibility"
            else "young-person-representative"
        )
        person: dict[str, Any] = {
            "resourceType": "RelatedPerson",
            "id": "maker",
            "patient": {"reference": patient},
            "relationship": [{"coding": [{"system": code_system_url(system), "code": by}]}],
            "name": [{"text": "A Example"}],
        }
        if relationship_period is not None:
            person["period"] = _period(relationship_period)
        contained.append(person)
        performer = {"reference": "#maker"}
    for number, (kind, outcome, effective) in enumerate(assessments):
        contained.append(
            {
                "resourceType": "Observation",
                "id": f"assessment{number}",
                "status": "final",
                "code": {
                    "coding": [
                        {"system": code_system_url("capacity-assessment-type"), "code": kind}
                    ]
                },
                "subject": {"reference": patient},
                "effectiveDateTime": effective,
                "performer": [{"display": "Dr A Example"}],
                "valueCodeableConcept": {
                    "coding": [
                        {"system": code_system_url("capacity-assessment-outcome"), "code": outcome}
                    ]
                },
            }
        )
    if assessments:
        parts.append({"url": "capacityAssessment", "valueReference": {"reference": "#assessment0"}})
    provision: dict[str, Any] = {
        "type": provision_type,
        "action": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                        "code": "disclose",
                    }
                ]
            }
        ],
        "purpose": [{"system": code_system_url("purpose"), "code": code} for code in purposes],
    }
    if period is not None:
        provision["period"] = _period(period)
    if actors is not None:
        provision["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                        }
                    ]
                },
                "reference": {"identifier": {"system": ODS_SYSTEM, "value": ods}},
            }
            for ods in actors
        ]
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patient},
        "dateTime": _date_time(made),
        "extension": [
            {"url": EXT_DECISION_MAKER, "extension": [{"url": "basis", "valueCode": basis}, *parts]}
        ],
        "performer": [performer],
        "policy": [{"uri": "https://fhir.send-exchange.example/policy/send-information-sharing"}],
        "provision": provision,
    }
    if contained:
        resource["contained"] = contained
    return resource


def records(*resources: dict[str, Any]) -> list[ConsentRecord]:
    """The resources read as stored Consents c1, c2, ... of the test patient."""
    return [
        consent_record(resource, f"c{number}", PATIENT_ID)
        for number, resource in enumerate(resources, start=1)
    ]


def at(day: str) -> datetime:
    """Noon London on a date."""
    return datetime.combine(date.fromisoformat(day), time(12), tzinfo=LONDON)


def decide_on(
    born: str, day: str, *resources: dict[str, Any], recipient: str = PROVIDER, purpose: str = EHCNA
) -> Decision:
    """The decision for the test patient born on `born`, asked at noon on `day`."""
    return decide(date.fromisoformat(born), records(*resources), recipient, purpose, at(day))


def result(decision: Decision) -> str:
    """`allow`, or `deny <reason>`: the shape of consent.md's table."""
    return "allow" if decision.permit else f"deny {decision.reason}"


MOTHER_2026_10_01 = consent_json("2026-10-01", period=("2026-10-01", "2027-10-01"))

WORKED_CASES = [
    pytest.param("2015-03-02", [MOTHER_2026_10_01], "2026-11-20", "allow", id="mother-permit"),
    pytest.param(
        "2015-03-02",
        [consent_json("2026-10-01", status="inactive")],
        "2026-11-20",
        "deny consent-withdrawn",
        id="mother-permit-withdrawn",
    ),
    pytest.param(
        "2012-05-10",
        [
            consent_json("2026-09-01"),
            consent_json(
                "2026-10-01",
                by="self",
                provision_type="deny",
                assessments=[("gillick", "competent", "2026-09-20")],
            ),
        ],
        "2026-11-20",
        "deny consent-refused-by-competent-child",
        id="gillick-child-refuses",
    ),
    pytest.param(
        "2012-05-10",
        [
            consent_json("2026-09-01"),
            consent_json("2026-10-01", by="self", provision_type="deny"),
        ],
        "2026-11-20",
        "allow",
        id="child-refusal-without-gillick-not-decisive",
    ),
    pytest.param(
        "2010-08-31",
        [consent_json("2026-05-01")],
        "2026-06-26",
        "allow",
        id="on-school-leaving-date",
    ),
    pytest.param(
        "2010-08-31",
        [consent_json("2026-05-01")],
        "2026-06-27",
        "deny consent-lapsed-young-person",
        id="day-after-school-leaving-date",
    ),
    pytest.param(
        "2010-03-15",
        [
            consent_json("2026-04-01", by="self", provision_type="deny"),
            consent_json("2026-03-01"),
        ],
        "2026-05-01",
        "deny consent-refused-by-competent-child",
        id="child-16-presumed-capacity-refuses",
    ),
    pytest.param(
        "2009-01-15",
        [consent_json("2026-10-01", by="self", basis="young-person")],
        "2026-11-20",
        "allow",
        id="young-person-permit",
    ),
    pytest.param(
        "2009-01-15",
        [consent_json("2026-10-01", by=YoungPersonRepresentative.PARENT_ACTING_FOR_YOUNG_PERSON)],
        "2026-11-20",
        "deny decision-maker-not-valid",
        id="parent-acting-without-mca",
    ),
    pytest.param(
        "2001-11-19",
        [consent_json("2026-10-01", by="self", basis="young-person")],
        "2027-07-31",
        "allow",
        id="academic-year-of-25th-birthday",
    ),
    pytest.param(
        "2001-11-19",
        [consent_json("2026-10-01", by="self", basis="young-person")],
        "2027-08-01",
        "deny out-of-scope-age",
        id="out-of-scope",
    ),
]


@pytest.mark.parametrize(("born", "resources", "day", "expected"), WORKED_CASES)
def test_worked_cases(born: str, resources: list[dict[str, Any]], day: str, expected: str) -> None:
    assert result(decide_on(born, day, *resources)) == expected


def test_deciding_consent_and_considered() -> None:
    decision = decide_on(
        "2012-05-10",
        "2026-11-20",
        consent_json("2026-09-01"),
        consent_json(
            "2026-10-01",
            by="self",
            provision_type="deny",
            assessments=[("gillick", "competent", "2026-09-20")],
        ),
    )
    assert decision.deciding is not None and decision.deciding.id == "c2"
    assert [(c.consent.id, c.ignored) for c in decision.considered] == [
        ("c1", Ignored.OUTRANKED),
        ("c2", None),
    ]
    assert decision.life_stage is LifeStage.CHILD
    assert decision.school_leaving_date == date(2028, 6, 30)


# Children Act 1989 s.44(4)(c): an emergency protection order only while it has effect.
@pytest.mark.parametrize("day", ["2026-10-01", "2026-10-03", "2026-10-08"])
def test_emergency_protection_order_inside_its_period(day: str) -> None:
    # Valid at the Consent's own date (both ends of the order inclusive); the decision
    # then stands after the order ends, like any other holder's.
    epo = consent_json(
        day,
        by=ParentalResponsibility.EMERGENCY_PROTECTION_ORDER,
        relationship_period=("2026-10-01", "2026-10-08"),
    )
    assert result(decide_on("2015-03-02", "2026-10-20", epo)) == "allow"


@pytest.mark.parametrize(
    "relationship_period", [("2026-10-01", "2026-10-08"), None, ("2026-10-12", None)]
)
def test_emergency_protection_order_outside_or_without_its_period(
    relationship_period: tuple[str | None, str | None] | None,
) -> None:
    epo = consent_json(
        "2026-10-10",
        by=ParentalResponsibility.EMERGENCY_PROTECTION_ORDER,
        relationship_period=relationship_period,
    )
    assert result(decide_on("2015-03-02", "2026-10-20", epo)) == "deny decision-maker-not-valid"


def test_other_parental_responsibility_needs_a_period_only_if_given() -> None:
    guardian = consent_json(
        "2026-10-10",
        by=ParentalResponsibility.LEGAL_GUARDIAN,
        relationship_period=("2027-01-01", None),
    )
    assert (
        result(decide_on("2015-03-02", "2027-02-01", guardian)) == "deny decision-maker-not-valid"
    )
    assert (
        result(
            decide_on("2015-03-02", "2027-02-01", consent_json("2026-10-10", by="legal-guardian"))
        )
        == "allow"
    )


def test_local_authority_with_care_order_outranks_a_later_parent() -> None:
    # s.33(3)(b): the LA may limit the parents' exercise of responsibility, whatever the dates.
    la_deny = consent_json("2026-09-01", by="la", provision_type="deny")
    mother_permit = consent_json("2026-10-01")
    decision = decide_on("2015-03-02", "2026-11-20", mother_permit, la_deny)
    assert result(decision) == "deny consent-refused"
    assert decision.deciding is not None and decision.deciding.maker.performer == "organization"
    la_permit = consent_json("2026-09-01", by="la")
    mother_deny = consent_json("2026-10-01", provision_type="deny")
    assert result(decide_on("2015-03-02", "2026-11-20", mother_deny, la_permit)) == "allow"


def test_special_guardian_outranks_a_later_parent() -> None:
    guardian = consent_json(
        "2026-09-01", by=ParentalResponsibility.SPECIAL_GUARDIAN, provision_type="deny"
    )
    parent = consent_json("2026-10-01")
    assert result(decide_on("2015-03-02", "2026-11-20", parent, guardian)) == "deny consent-refused"


def test_between_special_guardian_and_local_authority_the_latest_wins() -> None:
    guardian = consent_json(
        "2026-09-01", by=ParentalResponsibility.SPECIAL_GUARDIAN, provision_type="deny"
    )
    la = consent_json("2026-10-01", by="la")
    assert result(decide_on("2015-03-02", "2026-11-20", guardian, la)) == "allow"


def test_between_two_parents_the_latest_wins() -> None:
    # s.2(7): each holder may act alone, so the latest decision stands.
    mother = consent_json("2026-09-01")
    father = consent_json("2026-10-01", provision_type="deny")
    assert result(decide_on("2015-03-02", "2026-11-20", mother, father)) == "deny consent-refused"
    father_first = consent_json("2026-08-01", provision_type="deny")
    assert result(decide_on("2015-03-02", "2026-11-20", mother, father_first)) == "allow"


def test_exact_tie_goes_to_deny() -> None:
    mother = consent_json("2026-10-01T10:00:00+01:00")
    father = consent_json("2026-10-01T09:00:00Z", provision_type="deny")  # the same instant
    assert result(decide_on("2015-03-02", "2026-11-20", mother, father)) == "deny consent-refused"
    assert result(decide_on("2015-03-02", "2026-11-20", father, mother)) == "deny consent-refused"


def test_local_authority_care_order_as_a_related_person_is_not_valid() -> None:
    # s.33(3): a care order gives responsibility to the authority, recorded as an Organization.
    person = consent_json("2026-10-01", by=ParentalResponsibility.LOCAL_AUTHORITY_CARE_ORDER)
    assert result(decide_on("2015-03-02", "2026-11-20", person)) == "deny decision-maker-not-valid"


MCA_LACKS = ("mental-capacity-act", "lacks-capacity", "2026-09-15")


def test_young_person_lacking_capacity_representative_valid_self_not() -> None:
    deputy = consent_json(
        "2026-10-01", by=YoungPersonRepresentative.PERSONAL_WELFARE_DEPUTY, assessments=[MCA_LACKS]
    )
    own_deny = consent_json("2026-10-02", by="self", basis="young-person", provision_type="deny")
    decision = decide_on("2009-01-15", "2026-11-20", deputy, own_deny)
    assert result(decision) == "allow"
    assert [(c.consent.id, c.ignored) for c in decision.considered] == [
        ("c1", None),
        ("c2", Ignored.MAKER_NOT_VALID),
    ]
    birth = date(2009, 1, 15)
    deputy_record, own_record = records(deputy, own_deny)
    pool = deputy_record.assessments
    assert maker_validity(birth, deputy_record, pool).valid
    own = maker_validity(birth, own_record, pool)
    assert not own.valid and "lack capacity" in own.reason


def test_young_person_outranks_representative() -> None:
    deputy = consent_json(
        "2026-10-01", by=YoungPersonRepresentative.HEALTH_WELFARE_ATTORNEY, assessments=[MCA_LACKS]
    )
    # A later assessment finds capacity, so the young person's own later refusal is valid
    # and outranks the attorney's permit (which was valid at its own date).
    own_deny = consent_json(
        "2026-11-01",
        by="self",
        basis="young-person",
        provision_type="deny",
        assessments=[("mental-capacity-act", "has-capacity", "2026-10-30")],
    )
    assert result(decide_on("2009-01-15", "2026-11-20", deputy, own_deny)) == "deny consent-refused"


def test_child_16_lacking_capacity_cannot_decide() -> None:
    own_deny = consent_json(
        "2026-04-01",
        by="self",
        provision_type="deny",
        assessments=[("mental-capacity-act", "lacks-capacity", "2026-03-20")],
    )
    mother = consent_json("2026-03-01")
    assert result(decide_on("2010-03-15", "2026-05-01", own_deny, mother)) == "allow"


def test_gillick_assessment_older_than_12_months_does_not_count() -> None:
    father = consent_json("2026-09-01")
    child = consent_json(
        "2026-10-01",
        by="self",
        provision_type="deny",
        assessments=[("gillick", "competent", "2025-09-30")],
    )
    assert result(decide_on("2012-05-10", "2026-11-20", father, child)) == "allow"
    # 12 calendar months before, inclusive, still counts.
    on_the_day = consent_json(
        "2026-10-01",
        by="self",
        provision_type="deny",
        assessments=[("gillick", "competent", "2025-10-01")],
    )
    assert (
        result(decide_on("2012-05-10", "2026-11-20", father, on_the_day))
        == "deny consent-refused-by-competent-child"
    )


def test_later_contrary_assessment_cancels() -> None:
    father = consent_json("2026-09-01")
    competent = consent_json(
        "2026-08-01",
        by="self",
        provision_type="deny",
        purposes=["annual-review"],
        assessments=[("gillick", "competent", "2026-07-01")],
    )
    not_competent_later = consent_json(
        "2026-09-26", status="inactive", assessments=[("gillick", "not-competent", "2026-09-25")]
    )
    child = consent_json("2026-10-01", by="self", provision_type="deny")
    assert (
        result(decide_on("2012-05-10", "2026-11-20", father, competent, child))
        == "deny consent-refused-by-competent-child"
    )
    assert (
        result(decide_on("2012-05-10", "2026-11-20", father, competent, not_competent_later, child))
        == "allow"
    )


def test_entered_in_error_assessments_do_not_count() -> None:
    father = consent_json("2026-09-01")
    mistaken = consent_json(
        "2026-09-20",
        status="entered-in-error",
        assessments=[("gillick", "competent", "2026-09-20")],
    )
    child = consent_json("2026-10-01", by="self", provision_type="deny")
    assert result(decide_on("2012-05-10", "2026-11-20", father, mistaken, child)) == "allow"


def test_not_a_recipient() -> None:
    mother = consent_json("2026-10-01", actors=[OTHER_PROVIDER])
    decision = decide_on("2015-03-02", "2026-11-20", mother)
    assert result(decision) == "deny not-a-recipient"
    assert decision.considered[0].ignored is Ignored.NOT_FOR_RECIPIENT
    assert (
        result(decide_on("2015-03-02", "2026-11-20", mother, recipient=OTHER_PROVIDER)) == "allow"
    )


def test_not_a_recipient_needs_a_permit_in_period() -> None:
    expired = consent_json(
        "2026-01-01", actors=[OTHER_PROVIDER], period=("2026-01-01", "2026-06-30")
    )
    assert result(decide_on("2015-03-02", "2026-11-20", expired)) == "deny no-consent"


def test_no_consent() -> None:
    assert result(decide_on("2015-03-02", "2026-11-20")) == "deny no-consent"
    annual_review = consent_json("2026-10-01", purposes=["annual-review"])
    decision = decide_on("2015-03-02", "2026-11-20", annual_review)
    assert result(decision) == "deny no-consent"
    assert decision.considered[0].ignored is Ignored.OTHER_PURPOSE


def test_draft_is_ignored() -> None:
    decision = decide_on("2015-03-02", "2026-11-20", consent_json("2026-10-01", status="draft"))
    assert result(decision) == "deny no-consent"
    assert decision.considered[0].ignored is Ignored.NOT_ACTIVE


@pytest.mark.parametrize("day", ["2026-09-30", "2027-10-02"])
def test_outside_provision_period(day: str) -> None:
    decision = decide_on(
        "2015-03-02", day, consent_json("2026-09-01", period=("2026-10-01", "2027-10-01"))
    )
    assert result(decision) == "deny no-consent"
    assert decision.considered[0].ignored is Ignored.OUTSIDE_PERIOD


def test_provision_period_end_date_is_inclusive() -> None:
    mother = consent_json("2026-09-01", period=("2026-10-01", "2027-10-01"))
    late_evening = datetime(2027, 10, 1, 23, 30, tzinfo=LONDON)
    assert decide(date(2015, 3, 2), records(mother), PROVIDER, EHCNA, late_evening).permit


def test_consent_made_after_the_time_asked_about_is_not_in_force() -> None:
    decision = decide_on("2015-03-02", "2026-09-20", MOTHER_2026_10_01)
    assert result(decision) == "deny no-consent"
    assert decision.considered[0].ignored is Ignored.OUTSIDE_PERIOD


def test_out_of_scope_ignores_every_consent() -> None:
    decision = decide_on(
        "2001-11-19", "2027-08-01", consent_json("2026-10-01", by="self", basis="young-person")
    )
    assert decision.life_stage is LifeStage.OUT_OF_SCOPE
    assert decision.deciding is None
    assert decision.considered[0].ignored is Ignored.LAPSED


def test_consent_dated_when_out_of_scope_is_not_valid() -> None:
    late = records(consent_json("2027-08-01", by="self", basis="young-person"))[0]
    validity = maker_validity(date(2001, 11, 19), late, ())
    assert not validity.valid and "s.46" in validity.reason


def test_lapse_keeps_young_persons_own_consent() -> None:
    mother = consent_json("2026-05-01", provision_type="deny")
    own = consent_json("2026-07-01", by="self", basis="young-person")
    decision = decide_on("2010-08-31", "2026-08-01", mother, own)
    assert result(decision) == "allow"
    assert decision.considered[0].ignored is Ignored.LAPSED


def test_withdrawn_needs_a_valid_maker() -> None:
    invalid_then_withdrawn = consent_json(
        "2026-10-01", by="self", status="inactive"
    )  # child, no Gillick
    assert (
        result(decide_on("2015-03-02", "2026-11-20", invalid_then_withdrawn)) == "deny no-consent"
    )


def test_basis_must_fit_life_stage_and_performer() -> None:
    cases = [
        consent_json("2026-10-01", by="self", basis="young-person"),  # a child, not a young person
        consent_json("2026-10-01", by="self", basis="parental-responsibility"),
        consent_json(
            "2026-10-01", by=ParentalResponsibility.PARENT_WITH_PR, basis="gillick-competent-child"
        ),
        consent_json("2026-10-01", by=ParentalResponsibility.PARENT_WITH_PR, basis="unknown-basis"),
    ]
    for resource in cases:
        assert (
            result(decide_on("2015-03-02", "2026-11-20", resource))
            == "deny decision-maker-not-valid"
        )


def test_the_order_of_consents_does_not_matter() -> None:
    resources = [
        consent_json("2026-09-01"),
        consent_json("2026-10-01", by="la", provision_type="deny"),
        consent_json("2026-10-01", by=ParentalResponsibility.SPECIAL_GUARDIAN),
    ]
    forwards = decide(date(2015, 3, 2), records(*resources), PROVIDER, EHCNA, at("2026-11-20"))
    backwards = decide(
        date(2015, 3, 2), records(*resources)[::-1], PROVIDER, EHCNA, at("2026-11-20")
    )
    assert (forwards.permit, forwards.reason, forwards.deciding) == (
        backwards.permit,
        backwards.reason,
        backwards.deciding,
    )
    assert forwards.considered == backwards.considered


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(date(2015, 3, 2), [], PROVIDER, EHCNA, datetime(2026, 11, 20))


def test_denial_reason_is_an_access_denial_reason() -> None:
    decision = decide_on(
        "2015-03-02", "2026-11-20", consent_json("2026-10-01", provision_type="deny")
    )
    assert decision.reason is AccessDenialReason.CONSENT_REFUSED


def test_explain() -> None:
    decision = decide_on(
        "2012-05-10",
        "2026-11-20",
        consent_json("2026-09-01"),
        consent_json(
            "2026-10-01",
            by="self",
            provision_type="deny",
            assessments=[("gillick", "competent", "2026-09-20")],
        ),
        consent_json("2026-10-05", status="draft"),
    )
    text = explain(decision, "*** *** 1234", PROVIDER, EHCNA, at("2026-11-20"))
    assert "NHS number *** *** 1234" in text
    assert "life stage: child; school-leaving date 2028-06-30" in text
    assert "Consent/c1  2026-09-01  active  permit [ehcna-advice]" in text
    assert "ignored (outranked): outranked by Consent/c2" in text
    assert "decided (deny): the child themself, aged 14: Gillick competent" in text
    assert "ignored (not-active): status draft" in text
    assert (
        text.splitlines()[-1]
        == "Result: DENY consent-refused-by-competent-child (deciding Consent/c2)"
    )


def test_explain_without_consents() -> None:
    decision = decide_on("2015-03-02", "2026-11-20")
    text = explain(decision, "*** *** 1234", PROVIDER, EHCNA, at("2026-11-20"))
    assert "none recorded" in text
    assert text.splitlines()[-1] == "Result: DENY no-consent"


# --- corrections from the legal review (issue 11) -------------------------------------------


def test_a_sixteen_year_olds_own_decision_carries_over_to_the_young_person() -> None:
    own = records(consent_json("2026-04-01", by="self"))
    decision = decide(date(2010, 3, 15), own, PROVIDER, EHCNA, at("2026-07-01"))
    assert (decision.permit, decision.life_stage) == (True, LifeStage.YOUNG_PERSON)
    parents = records(consent_json("2026-04-01"))
    lapsed = decide(date(2010, 3, 15), parents, PROVIDER, EHCNA, at("2026-07-01"))
    assert lapsed.reason is AccessDenialReason.CONSENT_LAPSED_YOUNG_PERSON
    assert "on the child's behalf" in lapsed.considered[0].note


def test_an_attorneys_later_decision_wins_once_the_young_person_lacks_capacity() -> None:
    consents = records(
        consent_json("2026-03-01", by="self", basis="young-person"),
        consent_json(
            "2026-10-01",
            by=YoungPersonRepresentative.HEALTH_WELFARE_ATTORNEY,
            provision_type="deny",
            assessments=[("mental-capacity-act", "lacks-capacity", "2026-09-01")],
        ),
    )
    decision = decide(date(2005, 2, 1), consents, PROVIDER, EHCNA, at("2026-11-20"))
    assert (decision.permit, decision.reason) == (False, AccessDenialReason.CONSENT_REFUSED)
    assert decision.deciding is not None and decision.deciding.id == "c2"
    # Before the finding of incapacity the young person's own decision stood.
    assert decide(date(2005, 2, 1), consents[:1], PROVIDER, EHCNA, at("2026-11-20")).permit


def test_a_deputy_outranks_a_parent_acting_for_the_young_person() -> None:
    consents = records(
        consent_json(
            "2026-09-10",
            by=YoungPersonRepresentative.PERSONAL_WELFARE_DEPUTY,
            provision_type="deny",
            assessments=[("mental-capacity-act", "lacks-capacity", "2026-09-01")],
        ),
        consent_json(
            "2026-10-01",
            by=YoungPersonRepresentative.PARENT_ACTING_FOR_YOUNG_PERSON,
            assessments=[("mental-capacity-act", "lacks-capacity", "2026-09-01")],
        ),
    )
    decision = decide(date(2005, 2, 1), consents, PROVIDER, EHCNA, at("2026-11-20"))
    assert (decision.permit, decision.reason) == (False, AccessDenialReason.CONSENT_REFUSED)
    assert decision.deciding is not None and decision.deciding.id == "c1"
    assert "ranks higher" in next(c.note for c in decision.considered if c.consent.id == "c2")


def test_a_mental_capacity_assessment_before_sixteen_does_not_count() -> None:
    # Born on 31 August: a young person from the end of June 2025, still 15 until 31 August.
    born = date(2009, 8, 31)
    representative = consent_json(
        "2025-08-15",
        by=YoungPersonRepresentative.PARENT_ACTING_FOR_YOUNG_PERSON,
        assessments=[("mental-capacity-act", "lacks-capacity", "2025-07-15")],
    )
    validity = maker_validity(
        born, records(representative)[0], records(representative)[0].assessments
    )
    assert not validity.valid
    assert "before their 16th birthday" in validity.reason
    decision = decide(born, records(representative), PROVIDER, EHCNA, at("2025-08-20"))
    assert decision.reason is AccessDenialReason.DECISION_MAKER_NOT_VALID
    assert "before their 16th birthday" in explain(
        decision, "*******009", PROVIDER, EHCNA, at("2025-08-20")
    )
    # The same finding made on the 16th birthday counts.
    on_sixteenth = consent_json(
        "2025-09-15",
        by=YoungPersonRepresentative.PARENT_ACTING_FOR_YOUNG_PERSON,
        assessments=[("mental-capacity-act", "lacks-capacity", "2025-08-31")],
    )
    assert maker_validity(
        born, records(on_sixteenth)[0], records(on_sixteenth)[0].assessments
    ).valid
