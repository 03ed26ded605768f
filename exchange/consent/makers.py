"""Who may decide for a child or young person at a date (`consent.md`, "Who may decide"):
parental responsibility, Gillick competence, presumed capacity from 16, the young person,
and their representative when they lack capacity.

Pure functions over `ConsentRecord`s: no clock, no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from exchange.clock import london_date
from exchange.codes import (
    CapacityAssessmentOutcome,
    CapacityAssessmentType,
    DecisionMakerBasis,
    ParentalResponsibility,
    YoungPersonRepresentative,
)
from exchange.consent.calendar import (
    LifeStage,
    age_on,
    anniversary,
    life_stage,
    one_year_before,
    out_of_scope_from,
    school_leaving_date,
)
from exchange.consent.records import CapacityAssessment, ConsentRecord, DecisionMaker

#: Why each holder of parental responsibility holds it (Children Act 1989).
PARENTAL_RESPONSIBILITY_SOURCES: Final[dict[str, str]] = {
    ParentalResponsibility.PARENT_WITH_PR: (
        "holds parental responsibility (Children Act 1989 s.2, s.4, s.4ZA)"
    ),
    ParentalResponsibility.STEP_PARENT_WITH_PR: (
        "step-parent with parental responsibility (Children Act 1989 s.4A)"
    ),
    ParentalResponsibility.SPECIAL_GUARDIAN: "special guardian (Children Act 1989 s.14C)",
    ParentalResponsibility.LEGAL_GUARDIAN: "guardian (Children Act 1989 s.5)",
    ParentalResponsibility.CHILD_ARRANGEMENTS_ORDER_LIVES_WITH: (
        "named in a child arrangements order as a person the child lives with "
        "(Children Act 1989 s.12(2))"
    ),
    ParentalResponsibility.LOCAL_AUTHORITY_CARE_ORDER: (
        "local authority holding a care or interim care order (Children Act 1989 s.33(3), s.31(11))"
    ),
    ParentalResponsibility.EMERGENCY_PROTECTION_ORDER: (
        "holds an emergency protection order in force (Children Act 1989 s.44(4)(c))"
    ),
}

#: Who may act for a young person who lacks capacity, and under what.
REPRESENTATIVE_SOURCES: Final[dict[str, str]] = {
    YoungPersonRepresentative.PERSONAL_WELFARE_DEPUTY: (
        "deputy appointed by the Court of Protection (Mental Capacity Act 2005 s.16)"
    ),
    YoungPersonRepresentative.HEALTH_WELFARE_ATTORNEY: (
        "attorney under a lasting power of attorney (Mental Capacity Act 2005 s.9)"
    ),
    YoungPersonRepresentative.PARENT_ACTING_FOR_YOUNG_PERSON: (
        "parent acting for a young person who lacks capacity (Children and Families Act 2014 s.80)"
    ),
}

_PARENTAL_RESPONSIBILITY_CODES: Final = frozenset(ParentalResponsibility)
_REPRESENTATIVE_CODES: Final = frozenset(YoungPersonRepresentative)
#: Both may limit how parents exercise their responsibility: Children Act 1989 s.14C(1)(b)
#: (special guardian) and s.33(3)(b) (local authority under a care order).
LIMITING_PARENTAL_RESPONSIBILITY: Final = frozenset(
    {ParentalResponsibility.SPECIAL_GUARDIAN, ParentalResponsibility.LOCAL_AUTHORITY_CARE_ORDER}
)
#: Mental Capacity Act 2005 s.1(2), s.2(5): capacity is presumed from 16.
_CAPACITY_PRESUMED_FROM_AGE: Final = 16


@dataclass(frozen=True, slots=True)
class MakerValidity:
    """Whether a Consent's decision-maker could decide at the Consent's date, and why."""

    valid: bool
    #: For people: e.g. "parent-with-pr: holds parental responsibility (Children Act 1989 s.2)".
    reason: str


def counting_assessment(
    assessments: Sequence[CapacityAssessment],
    kind: CapacityAssessmentType,
    outcome: CapacityAssessmentOutcome,
    on: date,
) -> CapacityAssessment | None:
    """The latest assessment of `kind` with `outcome` that counts on `on`, if any.

    consent.md: it counts if effective on or before `on`, no more than 12 months before it,
    and no later assessment of the same kind (on or before `on`) says otherwise, because
    capacity is decision- and time-specific (Mental Capacity Act 2005 s.2(1)). A contrary
    assessment on the same day cancels too: the records cannot say which came last, and
    neither can then be relied on.
    """
    window_start = one_year_before(on)
    latest_contrary: date | None = None
    for assessment in assessments:
        if (
            assessment.type == kind
            and assessment.outcome != outcome
            and assessment.effective <= on
            and (latest_contrary is None or assessment.effective > latest_contrary)
        ):
            latest_contrary = assessment.effective
    found: CapacityAssessment | None = None
    for assessment in assessments:
        if (
            assessment.type == kind
            and assessment.outcome == outcome
            and window_start <= assessment.effective <= on
            and (latest_contrary is None or assessment.effective > latest_contrary)
            and (found is None or assessment.effective > found.effective)
        ):
            found = assessment
    return found


def maker_validity(
    birth: date, consent: ConsentRecord, assessments: Sequence[CapacityAssessment]
) -> MakerValidity:
    """Whether `consent`'s decision-maker was valid at the Consent's own London date.

    `assessments` is every capacity assessment known for the patient (from all their
    Consents except entered-in-error ones): an assessment recorded with one Consent counts
    for the others.
    """
    on = london_date(consent.date_time)
    if on < birth:
        return MakerValidity(False, f"the decision is dated {on}, before the subject's birth")
    stage = life_stage(birth, on)
    if stage is LifeStage.OUT_OF_SCOPE:
        # Children and Families Act 2014 s.46: no EHC plan after the academic year of the
        # 25th birthday, so nobody decides for this service any more.
        return MakerValidity(
            False,
            f"on {on} the subject was out of scope (from {out_of_scope_from(birth)}, after the "
            "academic year of their 25th birthday; Children and Families Act 2014 s.46)",
        )
    maker = consent.maker
    problem = _performer_problem(maker)
    if problem is not None:
        return MakerValidity(False, problem)
    match maker.basis:
        case DecisionMakerBasis.PARENTAL_RESPONSIBILITY:
            return _holder_of_parental_responsibility(birth, maker, stage, on)
        case DecisionMakerBasis.GILLICK_COMPETENT_CHILD:
            return _child_themself(birth, stage, on, assessments)
        case DecisionMakerBasis.YOUNG_PERSON:
            return _young_person_themself(birth, stage, on, assessments)
        case _:
            return _representative(birth, maker, stage, on, assessments)


def _performer_problem(maker: DecisionMaker) -> str | None:
    """consent.md "Recording": the performer must fit the basis, else the maker is invalid."""
    relationship = maker.relationship
    match maker.basis:
        case None:
            return "the decision-maker extension has no basis from decision-maker-basis"
        case DecisionMakerBasis.YOUNG_PERSON | DecisionMakerBasis.GILLICK_COMPETENT_CHILD:
            if maker.performer != "patient":
                return (
                    f"basis {maker.basis} needs the child or young person themself "
                    "(the Patient) as performer"
                )
            return None
        case DecisionMakerBasis.PARENTAL_RESPONSIBILITY:
            if maker.performer == "organization":
                if relationship != ParentalResponsibility.LOCAL_AUTHORITY_CARE_ORDER:
                    return (
                        "an organisation decides only as a local authority holding a care order "
                        "(relationship local-authority-care-order; Children Act 1989 s.33(3))"
                    )
                return None
            if (
                maker.performer == "related-person"
                and relationship in _PARENTAL_RESPONSIBILITY_CODES
            ):
                if relationship == ParentalResponsibility.LOCAL_AUTHORITY_CARE_ORDER:
                    # Children Act 1989 s.33(3): a care order gives parental responsibility
                    # to the authority itself, not to a person.
                    return (
                        "local-authority-care-order is held by the local authority: "
                        "record it as an Organization performer"
                    )
                return None
            return (
                "basis parental-responsibility needs a contained RelatedPerson with a "
                "parental-responsibility relationship, or the local authority with a care order"
            )
        case _:
            if maker.performer == "related-person" and relationship in _REPRESENTATIVE_CODES:
                return None
            return (
                "basis young-person-representative needs a contained RelatedPerson with a "
                "young-person-representative relationship"
            )


def _outside_relationship_period(maker: DecisionMaker, on: date) -> bool:
    start, end = maker.relationship_start, maker.relationship_end
    return (start is not None and on < start) or (end is not None and on > end)


def _holder_of_parental_responsibility(
    birth: date, maker: DecisionMaker, stage: LifeStage, on: date
) -> MakerValidity:
    code = str(maker.relationship)
    if stage is LifeStage.YOUNG_PERSON:
        # Children and Families Act 2014 s.83(2): after compulsory school age the young
        # person decides; a parent may act only as their representative (s.80).
        return MakerValidity(
            False,
            f"{code}: on {on} the subject was a young person (after their school-leaving date "
            f"{school_leaving_date(birth)}; Children and Families Act 2014 s.83(2)), who decides "
            "for themself; a parent acts for them only as a representative when they lack capacity",
        )
    if code == ParentalResponsibility.EMERGENCY_PROTECTION_ORDER:
        # Children Act 1989 s.44(4)(c): responsibility only while the order has effect,
        # which is at most 8 days, extendable once (s.45(1), s.45(5)); an order without
        # both ends cannot show it was in force.
        if maker.relationship_start is None or maker.relationship_end is None:
            return MakerValidity(
                False,
                f"{code}: the order's period (start and end) is required: it gives parental "
                "responsibility only while it has effect (Children Act 1989 s.44(4)(c), s.45)",
            )
        if _outside_relationship_period(maker, on):
            return MakerValidity(
                False,
                f"{code}: the order ({maker.relationship_start} to {maker.relationship_end}) was "
                f"not in force on {on} (Children Act 1989 s.44(4)(c), s.45)",
            )
    elif _outside_relationship_period(maker, on):
        return MakerValidity(
            False,
            f"{code}: the relationship's period ({maker.relationship_start or '...'} to "
            f"{maker.relationship_end or '...'}) does not include {on}",
        )
    return MakerValidity(True, f"{code}: {PARENTAL_RESPONSIBILITY_SOURCES[code]}")


def mca_assessments(
    birth: date, assessments: Sequence[CapacityAssessment]
) -> list[CapacityAssessment]:
    """The assessments that may count under the Mental Capacity Act: Gillick ones, and MCA
    ones made on or after the 16th birthday (the Act's decision-making provisions apply
    from 16, s.2(5)); an MCA assessment made earlier never counts."""
    sixteen = anniversary(birth, birth.year + _CAPACITY_PRESUMED_FROM_AGE)
    return [
        a
        for a in assessments
        if a.type is not CapacityAssessmentType.MENTAL_CAPACITY_ACT or a.effective >= sixteen
    ]


def lacking_capacity(
    birth: date, assessments: Sequence[CapacityAssessment], on: date
) -> CapacityAssessment | None:
    """A counting Mental Capacity Act assessment on `on` that found a lack of capacity
    (Mental Capacity Act 2005 s.2), or None: capacity is then presumed (s.1(2))."""
    return counting_assessment(
        mca_assessments(birth, assessments),
        CapacityAssessmentType.MENTAL_CAPACITY_ACT,
        CapacityAssessmentOutcome.LACKS_CAPACITY,
        on,
    )


def _before_sixteen_note(birth: date, assessments: Sequence[CapacityAssessment], on: date) -> str:
    """Why an MCA assessment on record does not count: it was made before the 16th birthday."""
    early = [
        a
        for a in assessments
        if a.type is CapacityAssessmentType.MENTAL_CAPACITY_ACT
        and a not in mca_assessments(birth, assessments)
        and a.effective <= on
    ]
    if not early:
        return ""
    return (
        f" (the Mental Capacity Act assessment of {max(a.effective for a in early)} "
        "was made before their "
        "16th birthday and does not count: Mental Capacity Act 2005 s.2(5))"
    )


def _child_themself(
    birth: date, stage: LifeStage, on: date, assessments: Sequence[CapacityAssessment]
) -> MakerValidity:
    if stage is LifeStage.YOUNG_PERSON:
        return MakerValidity(
            False,
            f"the subject themself: on {on} they were a young person (after their school-leaving "
            f"date {school_leaving_date(birth)}; Children and Families Act 2014 s.83(2)), so the "
            "basis is young-person, not gillick-competent-child",
        )
    age = age_on(birth, on)
    if age < _CAPACITY_PRESUMED_FROM_AGE:
        # Gillick v West Norfolk 1985: a child under 16 decides for themself only when
        # found to have sufficient understanding; nothing is presumed.
        competent = counting_assessment(
            assessments, CapacityAssessmentType.GILLICK, CapacityAssessmentOutcome.COMPETENT, on
        )
        if competent is None:
            return MakerValidity(
                False,
                f"the child themself, aged {age}: no Gillick assessment counting on {on} says "
                "competent (one effective in the 12 months up to the decision, not contradicted "
                "by a later one; Gillick v West Norfolk 1985)",
            )
        return MakerValidity(
            True,
            f"the child themself, aged {age}: Gillick competent (assessment of "
            f"{competent.effective}; Gillick v West Norfolk 1985)",
        )
    lacks = lacking_capacity(birth, assessments, on)
    if lacks is not None:
        return MakerValidity(
            False,
            f"the child themself, aged {age}: a Mental Capacity Act assessment of "
            f"{lacks.effective} "
            "found they lack capacity (Mental Capacity Act 2005 s.2)",
        )
    # From 16 no Gillick assessment is needed: capacity is presumed.
    return MakerValidity(
        True,
        f"the child themself, aged {age}: capacity presumed from 16 "
        "(Mental Capacity Act 2005 s.1(2), s.2(5))",
    )


def _young_person_themself(
    birth: date, stage: LifeStage, on: date, assessments: Sequence[CapacityAssessment]
) -> MakerValidity:
    if stage is LifeStage.CHILD:
        return MakerValidity(
            False,
            f"the subject themself: on {on} they were a child (on or before their school-leaving "
            f"date {school_leaving_date(birth)}; Children and Families Act 2014 s.83(2)), so the "
            "basis is gillick-competent-child, not young-person",
        )
    lacks = lacking_capacity(birth, assessments, on)
    if lacks is not None:
        return MakerValidity(
            False,
            f"the young person themself: a Mental Capacity Act assessment of {lacks.effective} "
            "found they lack capacity (Mental Capacity Act 2005 s.2); a representative decides",
        )
    return MakerValidity(
        True,
        "the young person themself (Children and Families Act 2014 s.83(2)); capacity presumed "
        "(Mental Capacity Act 2005 s.1(2))",
    )


def _representative(
    birth: date,
    maker: DecisionMaker,
    stage: LifeStage,
    on: date,
    assessments: Sequence[CapacityAssessment],
) -> MakerValidity:
    code = str(maker.relationship)
    if stage is LifeStage.CHILD:
        return MakerValidity(
            False,
            f"{code}: on {on} the subject was a child; a representative acts only for a young "
            "person (Children and Families Act 2014 s.80, s.83(2))",
        )
    if _outside_relationship_period(maker, on):
        return MakerValidity(
            False,
            f"{code}: the relationship's period ({maker.relationship_start or '...'} to "
            f"{maker.relationship_end or '...'}) does not include {on}",
        )
    lacks = lacking_capacity(birth, assessments, on)
    if lacks is None:
        # Mental Capacity Act 2005 s.1(2): a person is assumed to have capacity unless it
        # is established that they lack it.
        return MakerValidity(
            False,
            f"{code}: a representative decides only when a Mental Capacity Act assessment "
            f"counting on {on} says the young person lacks capacity, and none does (capacity is "
            f"presumed: Mental Capacity Act 2005 s.1(2))"
            f"{_before_sixteen_note(birth, assessments, on)}",
        )
    return MakerValidity(
        True,
        f"{code}: {REPRESENTATIVE_SOURCES[code]}; the young person lacks capacity (assessment "
        f"of {lacks.effective}; Mental Capacity Act 2005 s.2)",
    )
