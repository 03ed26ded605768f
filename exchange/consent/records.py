"""The consent decision's inputs, read from FHIR R4 Consent JSON (`consent.md`, "Recording").

`consent_record` never raises on a structurally valid R4 Consent: stored consents include
ones whose decision-maker is not valid (they are a record of what was said), so anything
missing or unrecognised becomes `None` or `"unknown"` and the decision treats it as not
valid rather than failing the request that reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Literal

from exchange.clock import LONDON, london_date
from exchange.codes import (
    EXT_DECISION_MAKER,
    ODS_SYSTEM,
    PARTICIPATION_TYPE_SYSTEM,
    CapacityAssessmentOutcome,
    CapacityAssessmentType,
    DecisionMakerBasis,
    ParentalResponsibility,
    YoungPersonRepresentative,
    code_system_url,
)

Performer = Literal["patient", "related-person", "organization", "unknown"]
ProvisionType = Literal["permit", "deny"]

#: The `dateTime` of a Consent that has none (R4 allows it; this service's profile does
#: not). Before anyone's birth, so its decision-maker is never valid.
UNDATED: Final = datetime(1, 1, 2, tzinfo=UTC)

PURPOSE_SYSTEM: Final = code_system_url("purpose")
BASIS_SYSTEM: Final = code_system_url("decision-maker-basis")
PARENTAL_RESPONSIBILITY_SYSTEM: Final = code_system_url("parental-responsibility")
REPRESENTATIVE_SYSTEM: Final = code_system_url("young-person-representative")
ASSESSMENT_TYPE_SYSTEM: Final = code_system_url("capacity-assessment-type")
ASSESSMENT_OUTCOME_SYSTEM: Final = code_system_url("capacity-assessment-outcome")

#: Relationship codes by system: a code counts only with its own system.
RELATIONSHIP_CODES: Final[dict[str, frozenset[str]]] = {
    PARENTAL_RESPONSIBILITY_SYSTEM: frozenset(ParentalResponsibility),
    REPRESENTATIVE_SYSTEM: frozenset(YoungPersonRepresentative),
}

#: The outcomes each kind of assessment can have: Gillick asks about competence, the Mental
#: Capacity Act 2005 (s.2, s.3) about capacity.
OUTCOMES_BY_TYPE: Final[dict[CapacityAssessmentType, frozenset[CapacityAssessmentOutcome]]] = {
    CapacityAssessmentType.GILLICK: frozenset(
        {CapacityAssessmentOutcome.COMPETENT, CapacityAssessmentOutcome.NOT_COMPETENT}
    ),
    CapacityAssessmentType.MENTAL_CAPACITY_ACT: frozenset(
        {CapacityAssessmentOutcome.HAS_CAPACITY, CapacityAssessmentOutcome.LACKS_CAPACITY}
    ),
}

_BASIS_CODES: Final = frozenset(DecisionMakerBasis)

#: Observation statuses that mean no assessment took place (or it was recorded in error).
_VOID_OBSERVATION_STATUSES: Final = frozenset({"cancelled", "entered-in-error"})

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$", re.ASCII)
_END_OF_DAY = time(23, 59, 59, 999999)


@dataclass(frozen=True, slots=True)
class CapacityAssessment:
    """A Gillick or Mental Capacity Act assessment (a contained Observation)."""

    type: CapacityAssessmentType
    outcome: CapacityAssessmentOutcome
    #: The Europe/London date of `effectiveDateTime`.
    effective: date


@dataclass(frozen=True, slots=True)
class DecisionMaker:
    """Who made the decision (`Consent.performer[0]`) and on what basis (the extension)."""

    #: None when the extension or its basis is missing or not a known code.
    basis: DecisionMakerBasis | None
    performer: Performer
    #: A `parental-responsibility` or `young-person-representative` code: the
    #: RelatedPerson's relationship, or the extension's `relationship` for an Organization.
    relationship: str | None
    #: `RelatedPerson.period` as London dates, both inclusive.
    relationship_start: date | None
    relationship_end: date | None
    #: ODS code when the performer is an Organization.
    organisation: str | None
    #: The contained Observation that the extension's `capacityAssessment` references.
    assessment: CapacityAssessment | None


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One Consent, reduced to what the decision needs."""

    id: str
    status: str
    #: Aware; `UNDATED` when the Consent has no dateTime.
    date_time: datetime
    maker: DecisionMaker
    provision_type: ProvisionType
    purposes: frozenset[str]
    #: `provision.period`, inclusive; a date-only start is 00:00 London that day and a
    #: date-only end the last instant of that London day.
    period_start: datetime | None
    period_end: datetime | None
    #: ODS codes of the `IRCP` actors; None means no restriction on the recipient.
    actors: frozenset[str] | None
    #: Every capacity-assessment Observation contained in this Consent.
    assessments: tuple[CapacityAssessment, ...]


def consent_record(resource: dict[str, Any], resource_id: str, patient_id: str) -> ConsentRecord:
    """Read a stored Consent (structurally valid R4) into the decision's input."""
    contained = _contained_by_id(resource)
    provision = _dict(resource.get("provision"))
    period = _dict(provision.get("period"))
    purposes = frozenset(
        coding["code"]
        for coding in _dicts(provision.get("purpose"))
        if coding.get("system") == PURPOSE_SYSTEM and isinstance(coding.get("code"), str)
    )
    return ConsentRecord(
        id=resource_id,
        status=status if isinstance(status := resource.get("status"), str) else "unknown",
        date_time=parse_instant(resource.get("dateTime")) or UNDATED,
        maker=_decision_maker(resource, patient_id, contained),
        # A record that does not say `permit` never grants access: fail closed.
        provision_type="permit" if provision.get("type") == "permit" else "deny",
        purposes=purposes,
        period_start=parse_instant(period.get("start")),
        period_end=parse_instant(period.get("end"), end=True),
        actors=_recipients(provision),
        assessments=tuple(
            assessment
            for observation in contained.values()
            if (assessment := capacity_assessment(observation)) is not None
        ),
    )


def parse_instant(value: Any, *, end: bool = False) -> datetime | None:
    """A FHIR `date` or `dateTime` as an aware instant, or None if absent or unreadable.

    Partial values (`2026`, `2026-10`, `2026-10-01`) stand for London civil days: the first
    instant of the first day, or with `end` the last instant of the last day, so an
    inclusive end date covers the whole of that day. A time without an offset (not valid
    R4) is read as London time, the civil time of the records.
    """
    if not isinstance(value, str):
        return None
    partial = _PARTIAL_DATE.fullmatch(value)
    if partial:
        year, month, day = partial.groups()
        try:
            first = date(int(year), int(month or 1), int(day or 1))
        except ValueError:
            return None
        if not end:
            return datetime.combine(first, time(), tzinfo=LONDON)
        if day:
            last = first
        elif month:
            last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        else:
            last = date(first.year, 12, 31)
        return datetime.combine(last, _END_OF_DAY, tzinfo=LONDON)
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=LONDON)


def _london_day(value: Any, *, end: bool = False) -> date | None:
    instant = parse_instant(value, end=end)
    return london_date(instant) if instant is not None else None


def capacity_assessment(observation: dict[str, Any]) -> CapacityAssessment | None:
    """A contained Observation read as a capacity assessment, or None if it is not one.

    Not one: another kind of Observation, a cancelled or entered-in-error one, an outcome
    that does not belong to the type, or an effective date less precise than a day
    (whether it counts depends on the day, consent.md).
    """
    if observation.get("resourceType") != "Observation":
        return None
    if observation.get("status") in _VOID_OBSERVATION_STATUSES:
        return None
    kind = _known_code(
        _dict(observation.get("code")), ASSESSMENT_TYPE_SYSTEM, CapacityAssessmentType
    )
    outcome = _known_code(
        _dict(observation.get("valueCodeableConcept")),
        ASSESSMENT_OUTCOME_SYSTEM,
        CapacityAssessmentOutcome,
    )
    effective_value = observation.get("effectiveDateTime")
    if kind is None or outcome is None or not isinstance(effective_value, str):
        return None
    kind_type = CapacityAssessmentType(kind)
    outcome_type = CapacityAssessmentOutcome(outcome)
    if outcome_type not in OUTCOMES_BY_TYPE[kind_type] or len(effective_value) < len("YYYY-MM-DD"):
        return None
    effective = _london_day(effective_value)
    if effective is None:
        return None
    return CapacityAssessment(type=kind_type, outcome=outcome_type, effective=effective)


def decision_maker_extension(resource: dict[str, Any]) -> dict[str, Any] | None:
    """The Consent's `decision-maker` extension, if there is one."""
    for extension in _dicts(resource.get("extension")):
        if extension.get("url") == EXT_DECISION_MAKER:
            return extension
    return None


def extension_values(extension: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The decision-maker extension's parts by url (the first of each)."""
    parts: dict[str, dict[str, Any]] = {}
    for part in _dicts(extension.get("extension")):
        url = part.get("url")
        if isinstance(url, str):
            parts.setdefault(url, part)
    return parts


def relationship_code(codings: Iterable[Any]) -> str | None:
    """The first coding that is a `parental-responsibility` or `young-person-representative`
    code of its own system."""
    for coding in codings:
        if not isinstance(coding, dict):
            continue
        codes = RELATIONSHIP_CODES.get(str(coding.get("system")), frozenset())
        if coding.get("code") in codes:
            return str(coding["code"])
    return None


def ods_code(identifier: Any) -> str | None:
    """The ODS code of an Identifier, if it is one."""
    if isinstance(identifier, dict) and identifier.get("system") == ODS_SYSTEM:
        value = identifier.get("value")
        if isinstance(value, str) and value:
            return value
    return None


def _decision_maker(
    resource: dict[str, Any], patient_id: str, contained: dict[str, dict[str, Any]]
) -> DecisionMaker:
    extension = decision_maker_extension(resource)
    parts = extension_values(extension) if extension is not None else {}
    basis_code = parts.get("basis", {}).get("valueCode")
    basis = (
        DecisionMakerBasis(basis_code)
        if isinstance(basis_code, str) and basis_code in _BASIS_CODES
        else None
    )
    assessment = None
    reference = _dict(parts.get("capacityAssessment", {}).get("valueReference")).get("reference")
    if isinstance(reference, str) and reference.startswith("#") and reference[1:] in contained:
        assessment = capacity_assessment(contained[reference[1:]])

    performer: Performer = "unknown"
    relationship = organisation = None
    start = end = None
    performers = _dicts(resource.get("performer"))
    first = performers[0] if performers else {}
    target = first.get("reference")
    if target == f"Patient/{patient_id}":
        performer = "patient"
    elif isinstance(target, str) and target.startswith("#"):
        related = contained.get(target[1:], {})
        if related.get("resourceType") == "RelatedPerson":
            performer = "related-person"
            relationship = relationship_code(
                coding
                for concept in _dicts(related.get("relationship"))
                for coding in _dicts(concept.get("coding"))
            )
            period = _dict(related.get("period"))
            start, end = _london_day(period.get("start")), _london_day(period.get("end"), end=True)
    elif (
        _is_organisation_reference(first) and (ods := ods_code(first.get("identifier"))) is not None
    ):
        performer, organisation = "organization", ods
        relationship = relationship_code([parts.get("relationship", {}).get("valueCoding")])
    return DecisionMaker(
        basis=basis,
        performer=performer,
        relationship=relationship,
        relationship_start=start,
        relationship_end=end,
        organisation=organisation,
        assessment=assessment,
    )


def _is_organisation_reference(reference: dict[str, Any]) -> bool:
    """By identifier only (type absent or Organization), or `Organization/...` with one."""
    target, kind = reference.get("reference"), reference.get("type")
    if kind not in (None, "Organization"):
        return False
    return target is None or (isinstance(target, str) and target.startswith("Organization/"))


def _recipients(provision: dict[str, Any]) -> frozenset[str] | None:
    """ODS codes of the IRCP actors. An IRCP actor without an ODS identifier still restricts
    (it names a recipient this service cannot match), so such a Consent fails closed."""
    recipients: set[str] = set()
    restricted = False
    for actor in _dicts(provision.get("actor")):
        role = _dict(actor.get("role"))
        if not any(
            coding.get("system") == PARTICIPATION_TYPE_SYSTEM and coding.get("code") == "IRCP"
            for coding in _dicts(role.get("coding"))
        ):
            continue
        restricted = True
        ods = ods_code(_dict(actor.get("reference")).get("identifier"))
        if ods is not None:
            recipients.add(ods)
    return frozenset(recipients) if restricted else None


def _known_code(concept: dict[str, Any], system: str, codes: Iterable[str]) -> str | None:
    known = set(codes)
    for coding in _dicts(concept.get("coding")):
        if coding.get("system") == system and coding.get("code") in known:
            return str(coding["code"])
    return None


def _contained_by_id(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        item["id"]: item
        for item in _dicts(resource.get("contained"))
        if isinstance(item.get("id"), str)
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
