"""The consent decision (`consent.md`): who may decide for a child or young person, and
whether their decisions permit disclosure to a recipient for a purpose at a time.

Pure functions over `ConsentRecord`s: no clock, no database. The API, the CLI's
`exchange consent explain` and the access checks all call `decide`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Final

from exchange.clock import london_date
from exchange.consent.calendar import (
    LifeStage,
    age_on,
    life_stage,
    one_year_before,
    out_of_scope_from,
    school_leaving_date,
)
from exchange.consent.records import CapacityAssessment, ConsentRecord, DecisionMaker
from exchange.fhir.terminology import (
    AccessDenialReason,
    CapacityAssessmentOutcome,
    CapacityAssessmentType,
    DecisionMakerBasis,
    ParentalResponsibility,
    YoungPersonRepresentative,
)

#: Why each holder of parental responsibility holds it (Children Act 1989).
PARENTAL_RESPONSIBILITY_SOURCES: Final[dict[str, str]] = {
    ParentalResponsibility.PARENT_WITH_PR: "holds parental responsibility (Children Act 1989 s.2, s.4, s.4ZA)",
    ParentalResponsibility.STEP_PARENT_WITH_PR: "step-parent with parental responsibility (Children Act 1989 s.4A)",
    ParentalResponsibility.SPECIAL_GUARDIAN: "special guardian (Children Act 1989 s.14C)",
    ParentalResponsibility.LEGAL_GUARDIAN: "guardian (Children Act 1989 s.5)",
    ParentalResponsibility.CHILD_ARRANGEMENTS_ORDER_LIVES_WITH: (
        "named in a child arrangements order as a person the child lives with (Children Act 1989 s.12(2))"
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
    YoungPersonRepresentative.PERSONAL_WELFARE_DEPUTY: "deputy appointed by the Court of Protection (Mental Capacity Act 2005 s.16)",
    YoungPersonRepresentative.HEALTH_WELFARE_ATTORNEY: "attorney under a lasting power of attorney (Mental Capacity Act 2005 s.9)",
    YoungPersonRepresentative.PARENT_ACTING_FOR_YOUNG_PERSON: (
        "parent acting for a young person who lacks capacity (Children and Families Act 2014 s.80)"
    ),
}

_PARENTAL_RESPONSIBILITY_CODES: Final = frozenset(ParentalResponsibility)
_REPRESENTATIVE_CODES: Final = frozenset(YoungPersonRepresentative)
#: Both may limit how parents exercise their responsibility: Children Act 1989 s.14C(1)(b)
#: (special guardian) and s.33(3)(b) (local authority under a care order).
_LIMITING_PARENTAL_RESPONSIBILITY: Final = frozenset(
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


class Ignored(StrEnum):
    """Why a Consent did not take part in the decision."""

    #: Status other than `active` (draft, proposed, inactive, rejected, entered-in-error).
    NOT_ACTIVE = "not-active"
    MAKER_NOT_VALID = "maker-not-valid"
    OTHER_PURPOSE = "other-purpose"
    #: `provision.period` does not contain the time asked about, or the Consent was made
    #: after it (a decision not yet taken cannot be in force).
    OUTSIDE_PERIOD = "outside-period"
    NOT_FOR_RECIPIENT = "not-for-recipient"
    #: Made at a life stage that has ended: while a child, the subject now a young person
    #: (Children and Families Act 2014 s.83(2)); or any Consent once the subject is out of
    #: scope (s.46).
    LAPSED = "lapsed"
    #: A candidate that disagrees with a higher-ranking or later decision.
    OUTRANKED = "outranked"


@dataclass(frozen=True, slots=True)
class Considered:
    """One Consent and its part in the decision: `ignored` is None when it decided or agreed."""

    consent: ConsentRecord
    ignored: Ignored | None
    note: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one recipient, purpose and time, with every Consent's part in it."""

    permit: bool
    #: The access-denial reason when `permit` is false.
    reason: AccessDenialReason | None
    #: The Consent that decided, when one did.
    deciding: ConsentRecord | None
    #: Every Consent, oldest first, with why it was ignored or that it decided or agreed.
    considered: tuple[Considered, ...]
    life_stage: LifeStage
    school_leaving_date: date


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
            return _representative(maker, stage, on, assessments)


def _performer_problem(maker: DecisionMaker) -> str | None:
    """consent.md "Recording": the performer must fit the basis, else the maker is invalid."""
    relationship = maker.relationship
    match maker.basis:
        case None:
            return "the decision-maker extension has no basis from decision-maker-basis"
        case DecisionMakerBasis.YOUNG_PERSON | DecisionMakerBasis.GILLICK_COMPETENT_CHILD:
            if maker.performer != "patient":
                return f"basis {maker.basis} needs the child or young person themself (the Patient) as performer"
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
                    return "local-authority-care-order is held by the local authority: record it as an Organization performer"
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
    lacks = counting_assessment(
        assessments,
        CapacityAssessmentType.MENTAL_CAPACITY_ACT,
        CapacityAssessmentOutcome.LACKS_CAPACITY,
        on,
    )
    if lacks is not None:
        return MakerValidity(
            False,
            f"the child themself, aged {age}: a Mental Capacity Act assessment of {lacks.effective} "
            "found they lack capacity (Mental Capacity Act 2005 s.2)",
        )
    # From 16 no Gillick assessment is needed: capacity is presumed.
    return MakerValidity(
        True,
        f"the child themself, aged {age}: capacity presumed from 16 (Mental Capacity Act 2005 s.1(2), s.2(5))",
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
    lacks = counting_assessment(
        assessments,
        CapacityAssessmentType.MENTAL_CAPACITY_ACT,
        CapacityAssessmentOutcome.LACKS_CAPACITY,
        on,
    )
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
    maker: DecisionMaker, stage: LifeStage, on: date, assessments: Sequence[CapacityAssessment]
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
    lacks = counting_assessment(
        assessments,
        CapacityAssessmentType.MENTAL_CAPACITY_ACT,
        CapacityAssessmentOutcome.LACKS_CAPACITY,
        on,
    )
    if lacks is None:
        # Mental Capacity Act 2005 s.1(2): a person is assumed to have capacity unless it
        # is established that they lack it.
        return MakerValidity(
            False,
            f"{code}: a representative decides only when a Mental Capacity Act assessment "
            f"counting on {on} says the young person lacks capacity, and none does (capacity is "
            "presumed: Mental Capacity Act 2005 s.1(2))",
        )
    return MakerValidity(
        True,
        f"{code}: {REPRESENTATIVE_SOURCES[code]}; the young person lacks capacity (assessment "
        f"of {lacks.effective}; Mental Capacity Act 2005 s.2)",
    )


def _rank(consent: ConsentRecord, stage: LifeStage) -> int:
    """consent.md step 4: higher decides."""
    maker = consent.maker
    if stage is LifeStage.CHILD:
        if maker.basis is DecisionMakerBasis.GILLICK_COMPETENT_CHILD:
            return 3
        # Children Act 1989 s.14C(1)(b), s.33(3)(b): they may limit the parents' exercise
        # of responsibility; every other holder may act alone (s.2(7)).
        return 2 if maker.relationship in _LIMITING_PARENTAL_RESPONSIBILITY else 1
    return 2 if maker.basis is DecisionMakerBasis.YOUNG_PERSON else 1


@dataclass(slots=True)
class _Review:
    """Working state for one Consent while deciding."""

    consent: ConsentRecord
    validity: MakerValidity | None
    ignored: Ignored | None = None
    note: str = ""


def decide(
    birth: date, consents: Sequence[ConsentRecord], recipient: str, purpose: str, at: datetime
) -> Decision:
    """The consent decision at `at` for `recipient` (ODS code) and `purpose` (consent.md,
    steps 1-6). Independent of the order of `consents`."""
    if at.tzinfo is None:
        raise ValueError("the decision time must be timezone-aware")
    today = london_date(at)
    stage = life_stage(birth, today)
    leaving = school_leaving_date(birth)
    pool = tuple(
        a
        for consent in consents
        if consent.status != "entered-in-error"
        for a in consent.assessments
    )
    reviews = [
        _review(birth, consent, pool, recipient, purpose, at, stage)
        for consent in sorted(consents, key=lambda c: (c.date_time, c.id))
    ]

    def decision(
        permit: bool, reason: AccessDenialReason | None, deciding: ConsentRecord | None
    ) -> Decision:
        considered = tuple(Considered(r.consent, r.ignored, r.note) for r in reviews)
        return Decision(permit, reason, deciding, considered, stage, leaving)

    # Step 1: Children and Families Act 2014 s.46.
    if stage is LifeStage.OUT_OF_SCOPE:
        for review in reviews:
            if review.ignored is None:
                review.ignored = Ignored.LAPSED
                review.note = (
                    f"the subject is out of scope from {out_of_scope_from(birth)} (after the academic "
                    "year of their 25th birthday; Children and Families Act 2014 s.46)"
                )
        return decision(False, AccessDenialReason.OUT_OF_SCOPE_AGE, None)

    # Step 2 (and the lapse of step 3) happened in _review: what is left are candidates.
    candidates = [review for review in reviews if review.ignored is None]
    if candidates:
        # Steps 4 and 5.
        winner = _precedence(candidates, stage)
        if winner.consent.provision_type == "permit":
            return decision(True, None, winner.consent)
        refused_by_child = winner.consent.maker.basis is DecisionMakerBasis.GILLICK_COMPETENT_CHILD
        reason = (
            AccessDenialReason.CONSENT_REFUSED_BY_COMPETENT_CHILD
            if refused_by_child
            else AccessDenialReason.CONSENT_REFUSED
        )
        return decision(False, reason, winner.consent)
    # Step 3: the only candidates were made while the young person was a child.
    if any(review.ignored is Ignored.LAPSED for review in reviews):
        return decision(False, AccessDenialReason.CONSENT_LAPSED_YOUNG_PERSON, None)
    # Step 6.
    return decision(False, _fallback(reviews, birth, purpose, at, stage), None)


def _review(
    birth: date,
    consent: ConsentRecord,
    pool: Sequence[CapacityAssessment],
    recipient: str,
    purpose: str,
    at: datetime,
    stage: LifeStage,
) -> _Review:
    """consent.md steps 2 and 3 for one Consent: ignored with a reason, or a candidate."""
    review = _Review(consent, None)
    made_by_then = consent.date_time <= at
    if made_by_then and consent.status in ("active", "inactive"):
        review.validity = maker_validity(birth, consent, pool)
    if consent.status != "active":
        review.ignored, review.note = Ignored.NOT_ACTIVE, f"status {consent.status}"
    elif not made_by_then:
        review.ignored, review.note = Ignored.OUTSIDE_PERIOD, "made after the time asked about"
    elif purpose not in consent.purposes:
        covered = ", ".join(sorted(consent.purposes)) or "no purpose of this service"
        review.ignored, review.note = Ignored.OTHER_PURPOSE, f"covers {covered}, not {purpose}"
    elif review.validity is not None and not review.validity.valid:
        review.ignored, review.note = Ignored.MAKER_NOT_VALID, review.validity.reason
    elif (consent.period_start is not None and at < consent.period_start) or (
        consent.period_end is not None and at > consent.period_end
    ):
        review.ignored, review.note = (
            Ignored.OUTSIDE_PERIOD,
            (
                f"provision.period ({_instant(consent.period_start)} to {_instant(consent.period_end)}) "
                "does not include the time asked about"
            ),
        )
    elif consent.actors is not None and recipient not in consent.actors:
        listed = ", ".join(sorted(consent.actors)) or "none identifiable by ODS code"
        review.ignored, review.note = (
            Ignored.NOT_FOR_RECIPIENT,
            f"recipients: {listed}; not {recipient}",
        )
    elif _lapsed(birth, consent, stage):
        review.ignored, review.note = (
            Ignored.LAPSED,
            (
                f"made on {london_date(consent.date_time)} while the subject was a child (school-leaving "
                f"date {school_leaving_date(birth)}); a young person decides for themself "
                "(Children and Families Act 2014 s.83(2))"
            ),
        )
    return review


def _lapsed(birth: date, consent: ConsentRecord, stage: LifeStage) -> bool:
    """Step 3: neither a parent's nor a child's own decision carries over to a young person."""
    return (
        stage is LifeStage.YOUNG_PERSON
        and life_stage(birth, london_date(consent.date_time)) is LifeStage.CHILD
    )


def _precedence(candidates: list[_Review], stage: LifeStage) -> _Review:
    """Step 4: the highest-ranking maker wins, then the latest dateTime.

    An exact tie (same rank and instant) goes to deny, then to the smallest id, so the
    answer never depends on the order the Consents arrive in. Candidates that agree with
    the winner are marked as agreeing; the others as outranked.
    """
    by_id = sorted(candidates, key=lambda r: r.consent.id)
    # sorted(reverse=True) is stable: among exact ties the smallest id stays first.
    ranked = sorted(
        by_id,
        key=lambda r: (
            _rank(r.consent, stage),
            r.consent.date_time,
            r.consent.provision_type == "deny",
        ),
        reverse=True,
    )
    winner = ranked[0]
    winner_rank = _rank(winner.consent, stage)
    winner.note = f"decided ({winner.consent.provision_type}): {_reason(winner)}"
    for review in ranked[1:]:
        if review.consent.provision_type == winner.consent.provision_type:
            review.note = f"agrees ({review.consent.provision_type}): {_reason(review)}"
            continue
        review.ignored = Ignored.OUTRANKED
        if _rank(review.consent, stage) < winner_rank:
            review.note = (
                f"outranked by Consent/{winner.consent.id}, whose decision-maker ranks higher"
            )
        elif review.consent.date_time < winner.consent.date_time:
            review.note = (
                f"superseded by a later decision of equal rank, Consent/{winner.consent.id}"
            )
        else:
            review.note = (
                f"made at the same instant as Consent/{winner.consent.id}: a tie goes to deny"
            )
    return winner


def _fallback(
    reviews: list[_Review], birth: date, purpose: str, at: datetime, stage: LifeStage
) -> AccessDenialReason:
    """Step 6, in its order."""
    for_purpose = [
        r for r in reviews if purpose in r.consent.purposes and r.consent.date_time <= at
    ]
    if any(
        r.consent.status == "inactive"
        and r.consent.provision_type == "permit"
        and r.validity
        and r.validity.valid
        for r in for_purpose
    ):
        return AccessDenialReason.CONSENT_WITHDRAWN
    # Only a permit that would have decided but for the recipient (active, valid maker,
    # in period, not lapsed) makes the caller "not a recipient"; an expired or lapsed one
    # would not have let anyone in, so it is no consent at all.
    if any(
        r.ignored is Ignored.NOT_FOR_RECIPIENT
        and r.consent.provision_type == "permit"
        and not _lapsed(birth, r.consent, stage)
        for r in for_purpose
    ):
        return AccessDenialReason.NOT_A_RECIPIENT
    active = [r for r in for_purpose if r.consent.status == "active"]
    if active and all(r.validity is not None and not r.validity.valid for r in active):
        return AccessDenialReason.DECISION_MAKER_NOT_VALID
    return AccessDenialReason.NO_CONSENT


def _reason(review: _Review) -> str:
    return review.validity.reason if review.validity is not None else ""


def _instant(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "..."
