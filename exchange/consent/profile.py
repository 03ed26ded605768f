"""This service's rules for Consent beyond R4 structure (`consent.md`, "Recording";
`fhir_profiles/StructureDefinition-send-consent.json`).

These reject what cannot be a SEND consent decision at all. Whether the decision-maker
could decide is not a profile rule: such a Consent is stored, tagged
`decision-maker-not-valid`, and answered with a warning (`decision_maker_warning`). A
future `dateTime` needs a clock and is checked by the API.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any, Final

from exchange.codes import (
    CONSENT_ACTION_SYSTEM,
    CONSENT_SCOPE_SYSTEM,
    EXT_DECISION_MAKER,
    LOINC_SYSTEM,
    ODS_SYSTEM,
    PARTICIPATION_TYPE_SYSTEM,
    CapacityAssessmentOutcome,
    CapacityAssessmentType,
    DecisionMakerBasis,
    ParentalResponsibility,
    Purpose,
)
from exchange.consent.makers import maker_validity
from exchange.consent.records import (
    ASSESSMENT_OUTCOME_SYSTEM,
    ASSESSMENT_TYPE_SYSTEM,
    BASIS_SYSTEM,
    OUTCOMES_BY_TYPE,
    PURPOSE_SYSTEM,
    RELATIONSHIP_CODES,
    CapacityAssessment,
    ConsentRecord,
    decision_maker_extension,
    extension_values,
    ods_code,
    parse_instant,
    relationship_code,
)
from exchange.errors import Issue
from exchange.fhir.validation import check_coding

#: The R4 required binding of Consent.status (consent-state-codes).
STATUSES: Final = frozenset(
    {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}
)
PATIENT_CONSENT_LOINC: Final = "59284-0"
_ACTIONS: Final = {"disclose", "access"}
#: Provision elements that would narrow a Consent in ways the decision does not apply.
_UNAPPLIED_RESTRICTIONS: Final = ("dataPeriod", "class", "code", "securityLabel", "data")
#: A FHIR id (R4 `id` datatype).
_PATIENT_REFERENCE = re.compile(r"^Patient/[A-Za-z0-9\-.]{1,64}$")
_PERFORMER_TYPES: Final = ("Patient", "RelatedPerson", "Organization")
_FULL_DATE_LENGTH: Final = len("YYYY-MM-DD")


def consent_profile_issues(resource: dict[str, Any]) -> list[Issue]:
    """Every way `resource` (structurally valid R4) breaks the send-consent profile."""
    contained = {
        item["id"]: (index, item)
        for index, item in enumerate(_list(resource.get("contained")))
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    }
    return [
        *_status(resource),
        *check_coding(
            resource.get("scope"), CONSENT_SCOPE_SYSTEM, {"patient-privacy"}, "Consent.scope"
        ),
        *_category(resource),
        *_patient(resource),
        *_date_time(resource),
        *_decision_maker(resource, contained),
        *_contained(resource),
        *_performer(resource, contained),
        *_provision(resource),
    ]


def decision_maker_warning(
    birth: date, record: ConsentRecord, assessments: Sequence[CapacityAssessment]
) -> str | None:
    """Why the decision-maker was not valid at the Consent's date, or None if they were.

    The text of the `decision-maker-not-valid` tag's OperationOutcome warning.
    """
    validity = maker_validity(birth, record, assessments)
    return None if validity.valid else validity.reason


def _error(code: str, diagnostics: str, expression: str) -> Issue:
    return Issue("error", code, diagnostics, (expression,))


def _status(resource: dict[str, Any]) -> list[Issue]:
    status = resource.get("status")
    if status is None:
        return [_error("required", "Consent.status is required", "Consent.status")]
    if status not in STATUSES:
        return [
            _error(
                "code-invalid",
                f"Consent.status {status!r} is not one of {', '.join(sorted(STATUSES))}",
                "Consent.status",
            )
        ]
    return []


def _category(resource: dict[str, Any]) -> list[Issue]:
    categories = _list(resource.get("category"))
    if not categories:
        return [
            _error(
                "required",
                f"Consent.category must include LOINC {PATIENT_CONSENT_LOINC}",
                "Consent.category",
            )
        ]
    if not any(
        coding.get("system") == LOINC_SYSTEM and coding.get("code") == PATIENT_CONSENT_LOINC
        for category in categories
        for coding in _dicts(_dict(category).get("coding"))
    ):
        return [
            _error(
                "code-invalid",
                f"Consent.category must include LOINC {PATIENT_CONSENT_LOINC} (Patient Consent)",
                "Consent.category",
            )
        ]
    return []


def _patient(resource: dict[str, Any]) -> list[Issue]:
    patient = resource.get("patient")
    if patient is None:
        return [
            _error(
                "required",
                "Consent.patient (the child or young person) is required",
                "Consent.patient",
            )
        ]
    reference = _dict(patient).get("reference")
    if not isinstance(reference, str) or not _PATIENT_REFERENCE.fullmatch(reference):
        return [
            _error(
                "value",
                "Consent.patient must be a reference Patient/<id>",
                "Consent.patient.reference",
            )
        ]
    return []


def _date_time(resource: dict[str, Any]) -> list[Issue]:
    value = resource.get("dateTime")
    if value is None:
        return [
            _error(
                "required",
                "Consent.dateTime (when the decision was made) is required",
                "Consent.dateTime",
            )
        ]
    # Who may decide depends on the day (consent.md), so a year or month is not enough.
    if not isinstance(value, str) or len(value) < _FULL_DATE_LENGTH or parse_instant(value) is None:
        return [
            _error("value", "Consent.dateTime must give at least a full date", "Consent.dateTime")
        ]
    return []


def _decision_maker(resource: dict[str, Any], contained: dict[str, tuple[int, Any]]) -> list[Issue]:
    extensions = _list(resource.get("extension"))
    positions = [
        i
        for i, ext in enumerate(extensions)
        if isinstance(ext, dict) and ext.get("url") == EXT_DECISION_MAKER
    ]
    if not positions:
        return [
            _error(
                "required",
                f"the decision-maker extension ({EXT_DECISION_MAKER}) is required",
                "Consent.extension",
            )
        ]
    if len(positions) > 1:
        return [
            _error(
                "invariant",
                "Consent has more than one decision-maker extension",
                f"Consent.extension[{positions[1]}]",
            )
        ]
    index = positions[0]
    extension = decision_maker_extension(resource) or {}
    base = f"Consent.extension[{index}]"
    issues: list[Issue] = []
    parts = [
        (i, part)
        for i, part in enumerate(_list(extension.get("extension")))
        if isinstance(part, dict)
    ]
    bases = [(i, part) for i, part in parts if part.get("url") == "basis"]
    if len(bases) != 1:
        issues.append(
            _error("required", "the decision-maker extension needs exactly one basis", base)
        )
    else:
        i, part = bases[0]
        if part.get("valueCode") not in set(DecisionMakerBasis):
            issues.append(
                _error(
                    "code-invalid",
                    f"basis must be a code of {BASIS_SYSTEM}",
                    f"{base}.extension[{i}].valueCode",
                )
            )
    for i, part in parts:
        if part.get("url") == "relationship":
            coding = part.get("valueCoding")
            if relationship_code([coding]) is None:
                issues.append(
                    _error(
                        "code-invalid",
                        "relationship must be a code of parental-responsibility or "
                        "young-person-representative",
                        f"{base}.extension[{i}].valueCoding",
                    )
                )
        elif part.get("url") == "capacityAssessment":
            reference = _dict(part.get("valueReference")).get("reference")
            target = (
                contained.get(reference[1:])
                if isinstance(reference, str) and reference.startswith("#")
                else None
            )
            if target is None or target[1].get("resourceType") != "Observation":
                issues.append(
                    _error(
                        "value",
                        "capacityAssessment must reference a contained Observation (#id)",
                        f"{base}.extension[{i}].valueReference",
                    )
                )
    return issues


def _contained(resource: dict[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    for index, item in enumerate(_list(resource.get("contained"))):
        kind = _dict(item).get("resourceType")
        if kind == "RelatedPerson":
            issues += _related_person(item, f"Consent.contained[{index}]")
        elif kind == "Observation":
            issues += _assessment(item, f"Consent.contained[{index}]")
    return issues


def _related_person(person: dict[str, Any], base: str) -> list[Issue]:
    issues: list[Issue] = []
    codings = [
        (i, coding)
        for i, concept in enumerate(_list(person.get("relationship")))
        for coding in _dicts(_dict(concept).get("coding"))
    ]
    for i, coding in codings:
        codes = RELATIONSHIP_CODES.get(str(coding.get("system")))
        if codes is not None and coding.get("code") not in codes:
            issues.append(
                _error(
                    "code-invalid",
                    f"{coding.get('code')!r} is not a code of {coding.get('system')}",
                    f"{base}.relationship[{i}]",
                )
            )
    if not issues and relationship_code(coding for _, coding in codings) is None:
        issues.append(
            _error(
                "code-invalid",
                "RelatedPerson.relationship needs a code of parental-responsibility or "
                "young-person-representative",
                f"{base}.relationship",
            )
        )
    return issues


def _assessment(observation: dict[str, Any], base: str) -> list[Issue]:
    issues = check_coding(
        observation.get("code"), ASSESSMENT_TYPE_SYSTEM, set(CapacityAssessmentType), f"{base}.code"
    )
    issues += check_coding(
        observation.get("valueCodeableConcept"),
        ASSESSMENT_OUTCOME_SYSTEM,
        set(CapacityAssessmentOutcome),
        f"{base}.valueCodeableConcept",
    )
    if not issues:
        kind = _coding_code(observation.get("code"), ASSESSMENT_TYPE_SYSTEM)
        outcome = _coding_code(observation.get("valueCodeableConcept"), ASSESSMENT_OUTCOME_SYSTEM)
        if outcome not in OUTCOMES_BY_TYPE[CapacityAssessmentType(kind)]:
            issues.append(
                _error(
                    "invariant",
                    f"outcome {outcome} does not belong to a {kind} assessment",
                    f"{base}.valueCodeableConcept",
                )
            )
    effective = observation.get("effectiveDateTime")
    if effective is None:
        issues.append(
            _error(
                "required",
                "a capacity assessment needs effectiveDateTime",
                f"{base}.effectiveDateTime",
            )
        )
    elif not isinstance(effective, str) or len(effective) < _FULL_DATE_LENGTH:
        # Whether an assessment counts depends on the day (consent.md).
        issues.append(
            _error(
                "value",
                "effectiveDateTime must give at least a full date",
                f"{base}.effectiveDateTime",
            )
        )
    return issues


def _performer(resource: dict[str, Any], contained: dict[str, tuple[int, Any]]) -> list[Issue]:
    performers = _list(resource.get("performer"))
    if not performers:
        return [
            _error(
                "required",
                "Consent.performer (who made the decision) is required",
                "Consent.performer",
            )
        ]
    if len(performers) > 1:
        return [
            _error(
                "invariant",
                "Consent.performer must name exactly one decision-maker",
                "Consent.performer",
            )
        ]
    performer = _dict(performers[0])
    reference = performer.get("reference")
    expression = "Consent.performer[0]"
    if isinstance(reference, str) and reference.startswith("#"):
        target = contained.get(reference[1:])
        if target is None or target[1].get("resourceType") != "RelatedPerson":
            return [
                _error(
                    "value",
                    f"{reference} must be a contained RelatedPerson",
                    f"{expression}.reference",
                )
            ]
        return []
    kind = performer.get("type") or (
        reference.split("/")[0] if isinstance(reference, str) else None
    )
    if kind == "Organization" or (reference is None and performer.get("identifier") is not None):
        # consent.md: only a local authority holding a care order, by ODS identifier,
        # with its relationship in the decision-maker extension.
        issues = []
        if ods_code(performer.get("identifier")) is None:
            issues.append(
                _error(
                    "required",
                    f"an Organization performer needs an identifier with system {ODS_SYSTEM}",
                    f"{expression}.identifier",
                )
            )
        parts = extension_values(decision_maker_extension(resource) or {})
        if (
            relationship_code([parts.get("relationship", {}).get("valueCoding")])
            != ParentalResponsibility.LOCAL_AUTHORITY_CARE_ORDER
        ):
            issues.append(
                _error(
                    "required",
                    "an Organization performer needs the decision-maker extension's "
                    "relationship local-authority-care-order",
                    "Consent.extension",
                )
            )
        return issues
    if kind not in _PERFORMER_TYPES:
        return [
            _error(
                "value",
                "Consent.performer must be the Patient, a contained RelatedPerson "
                "or an Organization",
                expression,
            )
        ]
    return []


def _provision(resource: dict[str, Any]) -> list[Issue]:
    provision = resource.get("provision")
    if not isinstance(provision, dict):
        return [_error("required", "Consent.provision is required", "Consent.provision")]
    issues: list[Issue] = []
    kind = provision.get("type")
    if kind is None:
        issues.append(
            _error(
                "required",
                "Consent.provision.type (permit or deny) is required",
                "Consent.provision.type",
            )
        )
    elif kind not in ("permit", "deny"):
        issues.append(
            _error(
                "code-invalid",
                "Consent.provision.type must be permit or deny",
                "Consent.provision.type",
            )
        )
    purposes = _list(provision.get("purpose"))
    if not purposes:
        issues.append(
            _error(
                "required",
                "Consent.provision.purpose needs at least one purpose",
                "Consent.provision.purpose",
            )
        )
    for i, purpose in enumerate(purposes):
        issues += check_coding(
            purpose, PURPOSE_SYSTEM, set(Purpose), f"Consent.provision.purpose[{i}]"
        )
    actions = _list(provision.get("action"))
    for i, action in enumerate(actions):
        issues += check_coding(
            action, CONSENT_ACTION_SYSTEM, _ACTIONS, f"Consent.provision.action[{i}]"
        )
    if not any(_coding_code(action, CONSENT_ACTION_SYSTEM) == "disclose" for action in actions):
        # Without an action the provision would be read as covering every action; the
        # decision is about disclosure, so the record must say it is.
        issues.append(
            _error(
                "required",
                "Consent.provision.action must include disclose (consentaction)",
                "Consent.provision.action",
            )
        )
    for element in _UNAPPLIED_RESTRICTIONS:
        if element in provision:
            # A restriction the decision does not apply would be stored and then ignored:
            # the Consent would grant more than the decision-maker said.
            issues.append(
                _error(
                    "not-supported",
                    f"Consent.provision.{element} is not applied by this service's "
                    "consent decision, "
                    "so a Consent restricted by it cannot be recorded",
                    f"Consent.provision.{element}",
                )
            )
    for i, actor in enumerate(_list(provision.get("actor"))):
        base = f"Consent.provision.actor[{i}]"
        issues += check_coding(
            _dict(actor).get("role"), PARTICIPATION_TYPE_SYSTEM, {"IRCP"}, f"{base}.role"
        )
        if ods_code(_dict(_dict(actor).get("reference")).get("identifier")) is None:
            issues.append(
                _error(
                    "required",
                    f"a recipient needs reference.identifier with system {ODS_SYSTEM}",
                    f"{base}.reference.identifier",
                )
            )
    period = _dict(provision.get("period"))
    start, end = parse_instant(period.get("start")), parse_instant(period.get("end"), end=True)
    if start is not None and end is not None and start > end:
        # R4 invariant per-1: a period's start is not after its end.
        issues.append(
            _error("invariant", "provision.period starts after it ends", "Consent.provision.period")
        )
    if provision.get("provision"):
        # The decision reads one level of provision; a nested exception it ignored could
        # disclose what the decision-maker excluded, so it is refused rather than ignored.
        issues.append(
            _error(
                "not-supported",
                "nested provisions are not supported",
                "Consent.provision.provision",
            )
        )
    return issues


def _coding_code(concept: Any, system: str) -> str:
    for coding in _dicts(_dict(concept).get("coding")):
        if coding.get("system") == system:
            return str(coding.get("code"))
    return ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in _list(value) if isinstance(item, dict)]
