"""Properties of the consent decision over generated patients and Consents (hypothesis)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.clock import LONDON
from exchange.codes import (
    AccessDenialReason,
    CapacityAssessmentOutcome,
    CapacityAssessmentType,
    ParentalResponsibility,
    YoungPersonRepresentative,
)
from exchange.consent.calendar import LifeStage, age_on, life_stage, school_leaving_date
from exchange.consent.decision import decide, maker_validity
from exchange.consent.records import ConsentRecord, consent_record
from tests.consent.test_decision import EHCNA, OTHER_PROVIDER, PATIENT_ID, PROVIDER, consent_json

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)

MAKERS = ["self", "la", *ParentalResponsibility, *YoungPersonRepresentative]
BASES = [
    None,
    None,
    None,
    "parental-responsibility",
    "gillick-competent-child",
    "young-person",
    "young-person-representative",
    "not-a-basis",
]
STATUSES = ["active", "active", "active", "inactive", "draft", "rejected", "entered-in-error"]
OUTCOMES = {
    "gillick": ["competent", "not-competent"],
    "mental-capacity-act": ["has-capacity", "lacks-capacity"],
}

Scenario = tuple[date, list[ConsentRecord], datetime]


@st.composite
def assessment(draw: st.DrawFn, made: date) -> tuple[str, str, str]:
    """A capacity assessment effective in the 18 months up to `made`."""
    kind = draw(st.sampled_from(sorted(OUTCOMES)))
    effective = made - timedelta(days=draw(st.integers(0, 540)))
    return kind, draw(st.sampled_from(OUTCOMES[kind])), effective.isoformat()


@st.composite
def plausible_maker(
    draw: st.DrawFn, birth: date, made: date
) -> tuple[str, str | None, list[tuple[str, str, str]]]:
    """A decision-maker who fits the subject's life stage on `made` (often, not always, valid)."""
    day = made.isoformat()
    if life_stage(birth, made) is LifeStage.CHILD:
        choice = draw(st.sampled_from(["parent", "parent", "other", "self"]))
        if choice == "parent":
            return ParentalResponsibility.PARENT_WITH_PR, None, []
        if choice == "other":
            return draw(st.sampled_from(["la", *ParentalResponsibility])), None, []
        kind = "gillick" if age_on(birth, made) < 16 else "mental-capacity-act"
        return "self", None, [(kind, draw(st.sampled_from(OUTCOMES[kind])), day)]
    if draw(st.booleans()):
        return "self", "young-person", []
    lacks = [("mental-capacity-act", "lacks-capacity", day)]
    return draw(st.sampled_from(list(YoungPersonRepresentative))), None, lacks


@st.composite
def consent_resource(draw: st.DrawFn, birth: date, earliest: date, latest: date) -> dict[str, Any]:
    """A Consent of the test patient made between `earliest` and `latest`: usually by a
    maker who fits the subject's life stage, sometimes by anyone on any basis."""
    made = draw(st.dates(earliest, latest))

    def optional_period() -> tuple[str | None, str | None] | None:
        if not draw(st.booleans()):
            return None
        start = made + timedelta(days=draw(st.integers(-400, 400)))
        return start.isoformat(), (start + timedelta(days=draw(st.integers(0, 800)))).isoformat()

    if draw(st.integers(0, 9)) < 7:
        by, basis, assessments = draw(plausible_maker(birth, made))
    else:
        by, basis = draw(st.sampled_from(MAKERS)), draw(st.sampled_from(BASES))
        assessments = []
    return consent_json(
        made.isoformat(),
        by=by,
        basis=basis,
        provision_type=draw(st.sampled_from(["permit", "deny"])),
        purposes=draw(
            st.lists(st.sampled_from([EHCNA, "annual-review"]), min_size=1, max_size=2, unique=True)
        ),
        status=draw(st.sampled_from(STATUSES)),
        period=optional_period(),
        relationship_period=optional_period(),
        actors=draw(
            st.none()
            | st.none()
            | st.lists(
                st.sampled_from([PROVIDER, OTHER_PROVIDER]), min_size=1, max_size=2, unique=True
            )
        ),
        assessments=[*assessments, *draw(st.lists(assessment(made), max_size=2))],
    )


def _records(resources: list[dict[str, Any]]) -> list[ConsentRecord]:
    return [
        consent_record(resource, f"c{number:02d}", PATIENT_ID)
        for number, resource in enumerate(resources)
    ]


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=LONDON)


@st.composite
def scenario(draw: st.DrawFn, *, all_before: bool = False) -> Scenario:
    """A patient's birth date, their Consents and a time to ask at. With `all_before`, every
    Consent (and so every assessment) is dated on a day before the day asked about."""
    birth = draw(st.dates(date(1998, 1, 1), date(2022, 12, 31)))
    # Ages spread over childhood, the years around school-leaving age and the end of scope.
    years = draw(st.sampled_from([(0, 15), (15, 18), (18, 24), (24, 27)]))
    asked = birth + timedelta(days=draw(st.integers(max(1, years[0] * 365), years[1] * 366)))
    latest = asked - timedelta(days=1) if all_before else asked + timedelta(days=60)
    earliest = max(birth, asked - timedelta(days=3 * 366))
    resources = draw(st.lists(consent_resource(birth, earliest, latest), max_size=6))
    return birth, _records(resources), _noon(asked)


def _pool(consents: list[ConsentRecord]) -> list[Any]:
    return [a for c in consents if c.status != "entered-in-error" for a in c.assessments]


@PROPERTY_SETTINGS
@given(scenario())
def test_never_permits_without_an_active_permit_from_a_valid_maker(case: Scenario) -> None:
    birth, consents, at = case
    pool = _pool(consents)
    decision = decide(birth, consents, PROVIDER, EHCNA, at)
    valid_permits = [
        c
        for c in consents
        if c.status == "active"
        and c.provision_type == "permit"
        and EHCNA in c.purposes
        and maker_validity(birth, c, pool).valid
    ]
    if not valid_permits:
        assert not decision.permit
    if decision.permit:
        assert decision.deciding in valid_permits
        assert decision.reason is None


@PROPERTY_SETTINGS
@given(scenario(all_before=True))
def test_a_later_refusal_by_the_subject_always_denies(case: Scenario) -> None:
    birth, consents, at = case
    day = at.date()
    assessments: list[tuple[str, str, str]] = []
    stage = life_stage(birth, day)
    if stage is LifeStage.CHILD and age_on(birth, day) < 16:
        basis = "gillick-competent-child"
        assessments.append(("gillick", "competent", day.isoformat()))  # Gillick v West Norfolk 1985
    else:
        basis = "gillick-competent-child" if stage is LifeStage.CHILD else "young-person"
        # Capacity is presumed from 16 (MCA 2005 s.1(2)); only an earlier finding that
        # they lack it needs a fresh assessment to rebut.
        if any(
            a.type is CapacityAssessmentType.MENTAL_CAPACITY_ACT
            and a.outcome is CapacityAssessmentOutcome.LACKS_CAPACITY
            for a in _pool(consents)
        ):
            assessments.append(("mental-capacity-act", "has-capacity", day.isoformat()))
    refusal = consent_json(
        datetime.combine(day, time(9), tzinfo=LONDON).isoformat(),
        by="self",
        basis=basis,
        provision_type="deny",
        assessments=assessments,
    )
    decision = decide(
        birth, [*consents, consent_record(refusal, "refusal", PATIENT_ID)], PROVIDER, EHCNA, at
    )
    assert not decision.permit
    expected = {
        LifeStage.CHILD: AccessDenialReason.CONSENT_REFUSED_BY_COMPETENT_CHILD,
        LifeStage.YOUNG_PERSON: AccessDenialReason.CONSENT_REFUSED,
        LifeStage.OUT_OF_SCOPE: AccessDenialReason.OUT_OF_SCOPE_AGE,
    }[stage]
    assert decision.reason is expected
    if stage is not LifeStage.OUT_OF_SCOPE:
        assert decision.deciding is not None and decision.deciding.id == "refusal"


@PROPERTY_SETTINGS
@given(st.dates(date(1900, 1, 1), date(2300, 12, 31)))
def test_school_leaving_date_is_the_last_friday_of_june_of_the_school_year(birth: date) -> None:
    leaving = school_leaving_date(birth)
    # The school year (1 Sep - 31 Aug) in which they turn 16 ends in the June after a
    # September-December birthday's 16th anniversary, else in that anniversary's year.
    ends_in = birth.year + 17 if birth.month >= 9 else birth.year + 16
    assert (leaving.year, leaving.month, leaving.weekday()) == (ends_in, 6, 4)
    assert (leaving + timedelta(days=7)).month == 7


@PROPERTY_SETTINGS
@given(scenario(), st.data())
def test_the_order_of_consents_does_not_matter(case: Scenario, data: st.DataObject) -> None:
    birth, consents, at = case
    shuffled = data.draw(st.permutations(consents))
    first = decide(birth, consents, PROVIDER, EHCNA, at)
    second = decide(birth, shuffled, PROVIDER, EHCNA, at)
    assert (first.permit, first.reason, first.deciding) == (
        second.permit,
        second.reason,
        second.deciding,
    )
    assert first.considered == second.considered
