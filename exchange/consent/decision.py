"""The consent decision (`consent.md`, steps 1-6): whether the decisions recorded for a
child or young person permit disclosure to a recipient for a purpose at a time. Who may
decide is in `makers`.

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
from exchange.codes import (
    AccessDenialReason,
    DecisionMakerBasis,
    YoungPersonRepresentative,
)
from exchange.consent.calendar import (
    LifeStage,
    life_stage,
    out_of_scope_from,
    school_leaving_date,
)
from exchange.consent.makers import (
    LIMITING_PARENTAL_RESPONSIBILITY,
    MakerValidity,
    lacking_capacity,
    maker_validity,
)
from exchange.consent.records import CapacityAssessment, ConsentRecord


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


#: A young person's representatives (consent.md step 4): a deputy or attorney (Mental
#: Capacity Act 2005 s.16, s.9) above a parent acting for them, who acts only where there is
#: neither (SEND Regulations 2014 reg 64).
_REPRESENTATIVE_RANKS: Final[dict[str, int]] = {
    YoungPersonRepresentative.PERSONAL_WELFARE_DEPUTY: 2,
    YoungPersonRepresentative.HEALTH_WELFARE_ATTORNEY: 2,
    YoungPersonRepresentative.PARENT_ACTING_FOR_YOUNG_PERSON: 1,
}


def _own(consent: ConsentRecord) -> bool:
    """Made by the child or young person themself."""
    return consent.maker.basis in (
        DecisionMakerBasis.GILLICK_COMPETENT_CHILD,
        DecisionMakerBasis.YOUNG_PERSON,
    )


def _rank(consent: ConsentRecord, stage: LifeStage) -> int:
    """consent.md step 4: higher decides."""
    maker = consent.maker
    if stage is LifeStage.CHILD:
        if maker.basis is DecisionMakerBasis.GILLICK_COMPETENT_CHILD:
            return 3
        # Children Act 1989 s.14C(1)(b), s.33(3)(b): they may limit the parents' exercise
        # of responsibility; every other holder may act alone (s.2(7)).
        return 2 if maker.relationship in LIMITING_PARENTAL_RESPONSIBILITY else 1
    if _own(consent):
        return 3
    return _REPRESENTATIVE_RANKS.get(str(maker.relationship), 0)


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
                    f"the subject is out of scope from {out_of_scope_from(birth)} "
                    "(after the academic "
                    "year of their 25th birthday; Children and Families Act 2014 s.46)"
                )
        return decision(False, AccessDenialReason.OUT_OF_SCOPE_AGE, None)

    # Step 2 (and the lapse of step 3) happened in _review: what is left are candidates.
    candidates = [review for review in reviews if review.ignored is None]
    if candidates:
        # Steps 4 and 5.
        winner = _precedence(candidates, stage, _acting_for(birth, pool, today, candidates, stage))
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
                f"provision.period ({_instant(consent.period_start)} to "
                f"{_instant(consent.period_end)}) "
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
                f"made on {london_date(consent.date_time)} on the child's behalf while they were "
                f"a child (school-leaving date {school_leaving_date(birth)}); a young person "
                "decides for themself "
                "(Children and Families Act 2014 s.83(2))"
            ),
        )
    return review


def _lapsed(birth: date, consent: ConsentRecord, stage: LifeStage) -> bool:
    """Step 3: a decision made on the child's behalf (a holder of parental responsibility,
    the LA) does not carry over to the young person; their own decisions do."""
    return (
        stage is LifeStage.YOUNG_PERSON
        and not _own(consent)
        and life_stage(birth, london_date(consent.date_time)) is LifeStage.CHILD
    )


def _acting_for(
    birth: date,
    pool: Sequence[CapacityAssessment],
    today: date,
    candidates: list[_Review],
    stage: LifeStage,
) -> frozenset[str]:
    """The ids of representatives' candidates that win over the young person's own earlier
    decision (consent.md step 4): while a counting MCA assessment says the young person
    lacks capacity, a representative's decision made after that assessment and after the
    young person's own latest decision stands, since a person who has lost capacity cannot
    revoke it (Mental Capacity Act 2005 s.2, s.9, s.16)."""
    if stage is not LifeStage.YOUNG_PERSON:
        return frozenset()
    lacks = lacking_capacity(birth, pool, today)
    if lacks is None:
        return frozenset()
    own = [review.consent.date_time for review in candidates if _own(review.consent)]
    own_latest = max(own) if own else None
    return frozenset(
        review.consent.id
        for review in candidates
        if not _own(review.consent)
        and london_date(review.consent.date_time) > lacks.effective
        and (own_latest is None or review.consent.date_time > own_latest)
    )


def _precedence(
    candidates: list[_Review], stage: LifeStage, acting: frozenset[str] = frozenset()
) -> _Review:
    """Step 4: the highest-ranking maker wins, then the latest dateTime; representatives in
    `acting` (`_acting_for`) rank above the young person.

    An exact tie (same rank and instant) goes to deny, then to the smallest id, so the
    answer never depends on the order the Consents arrive in. Candidates that agree with
    the winner are marked as agreeing; the others as outranked.
    """

    def rank(review: _Review) -> tuple[bool, int]:
        return review.consent.id in acting, _rank(review.consent, stage)

    by_id = sorted(candidates, key=lambda r: r.consent.id)
    # sorted(reverse=True) is stable: among exact ties the smallest id stays first.
    ranked = sorted(
        by_id,
        key=lambda r: (rank(r), r.consent.date_time, r.consent.provision_type == "deny"),
        reverse=True,
    )
    winner = ranked[0]
    winner_rank = rank(winner)
    winner.note = f"decided ({winner.consent.provision_type}): {_reason(winner)}"
    if winner.consent.id in acting:
        winner.note += (
            "; made for the young person after a finding that they lack capacity "
            "and after their own "
            "latest decision, which they can no longer revoke themself"
        )
    for review in ranked[1:]:
        if review.consent.provision_type == winner.consent.provision_type:
            review.note = f"agrees ({review.consent.provision_type}): {_reason(review)}"
            continue
        review.ignored = Ignored.OUTRANKED
        if rank(review) < winner_rank:
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
