"""Every code system, identifier system and extension URL of the service (`terminology.md`).

The FHIR artefacts under `fhir_profiles/` publish the same codes; a test keeps the two equal,
so code that compares against these enums and the CodeSystems clients read cannot drift.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

#: Canonical base of this service's own artefacts. An identifier, not an address: deployments
#: never change it.
CANONICAL_BASE: Final = "https://fhir.send-exchange.example"


def code_system_url(name: str) -> str:
    """The canonical URL of one of this service's CodeSystems."""
    return f"{CANONICAL_BASE}/CodeSystem/{name}"


def structure_definition_url(name: str) -> str:
    """The canonical URL of one of this service's extensions or profiles."""
    return f"{CANONICAL_BASE}/StructureDefinition/{name}"


# Identifier systems
NHS_NUMBER_SYSTEM: Final = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
CLIENT_ID_SYSTEM: Final = f"{CANONICAL_BASE}/Id/client-id"
CONSOLE_USER_SYSTEM: Final = f"{CANONICAL_BASE}/Id/console-user"
LA_CASE_REFERENCE_SYSTEM: Final = f"{CANONICAL_BASE}/Id/la-case-reference"
AGREEMENT_SYSTEM: Final = f"{CANONICAL_BASE}/Id/agreement"
AGREEMENT_URL_BASE: Final = f"{CANONICAL_BASE}/agreement"
DEFAULT_CONSENT_POLICY: Final = f"{CANONICAL_BASE}/policy/send-information-sharing"
SIX_WEEK_MEASURE: Final = f"{CANONICAL_BASE}/Measure/six-week-compliance"


#: `Contract.status` of a data-sharing agreement: only `executed` counts (`access.md`).
AGREEMENT_STATUSES: Final = ("executed", "terminated", "revoked")


class OrganisationRole(StrEnum):
    """`CB/CodeSystem/organisation-role`."""

    PROVIDER = "provider"
    ICB = "icb"
    LA = "la"


class Purpose(StrEnum):
    """`CB/CodeSystem/purpose`: why information is shared."""

    EHCNA_ADVICE = "ehcna-advice"
    DCO_QUALITY_ASSURANCE = "dco-quality-assurance"
    ANNUAL_REVIEW = "annual-review"
    TRIBUNAL = "tribunal"
    SAFEGUARDING = "safeguarding"
    COURT_ORDER = "court-order"


#: Purposes that skip the consent decision (access.md, "Break-glass").
BREAK_GLASS_PURPOSES: Final = frozenset({Purpose.SAFEGUARDING, Purpose.COURT_ORDER})


class DecisionMakerBasis(StrEnum):
    """`CB/CodeSystem/decision-maker-basis`."""

    PARENTAL_RESPONSIBILITY = "parental-responsibility"
    GILLICK_COMPETENT_CHILD = "gillick-competent-child"
    YOUNG_PERSON = "young-person"
    YOUNG_PERSON_REPRESENTATIVE = "young-person-representative"


class ParentalResponsibility(StrEnum):
    """`CB/CodeSystem/parental-responsibility`."""

    PARENT_WITH_PR = "parent-with-pr"
    STEP_PARENT_WITH_PR = "step-parent-with-pr"
    SPECIAL_GUARDIAN = "special-guardian"
    LEGAL_GUARDIAN = "legal-guardian"
    CHILD_ARRANGEMENTS_ORDER_LIVES_WITH = "child-arrangements-order-lives-with"
    LOCAL_AUTHORITY_CARE_ORDER = "local-authority-care-order"
    EMERGENCY_PROTECTION_ORDER = "emergency-protection-order"


class YoungPersonRepresentative(StrEnum):
    """`CB/CodeSystem/young-person-representative`."""

    PERSONAL_WELFARE_DEPUTY = "personal-welfare-deputy"
    HEALTH_WELFARE_ATTORNEY = "health-welfare-attorney"
    PARENT_ACTING_FOR_YOUNG_PERSON = "parent-acting-for-young-person"


class ConsentValidity(StrEnum):
    """`CB/CodeSystem/consent-validity` (Consent.meta.tag)."""

    DECISION_MAKER_NOT_VALID = "decision-maker-not-valid"


class ConsentReview(StrEnum):
    """`CB/CodeSystem/consent-review` (Consent.meta.tag)."""

    CONTESTED = "contested"


class ReviewReason(StrEnum):
    """`CB/CodeSystem/review-reason`: what puts an AuditEvent in the IG review queue."""

    BREAK_GLASS = "break-glass"
    CONTESTED_CONSENT = "contested-consent"
    BIRTH_DATE_CORRECTION = "birth-date-correction"


class CapacityAssessmentType(StrEnum):
    """`CB/CodeSystem/capacity-assessment-type`."""

    GILLICK = "gillick"
    MENTAL_CAPACITY_ACT = "mental-capacity-act"


class CapacityAssessmentOutcome(StrEnum):
    """`CB/CodeSystem/capacity-assessment-outcome`."""

    COMPETENT = "competent"
    NOT_COMPETENT = "not-competent"
    HAS_CAPACITY = "has-capacity"
    LACKS_CAPACITY = "lacks-capacity"


class TaskType(StrEnum):
    """`CB/CodeSystem/task-type`."""

    EHCNA_HEALTH_ADVICE = "ehcna-health-advice"
    DCO_QUALITY_ASSURANCE = "dco-quality-assurance"
    TRIBUNAL_HEALTH_RESPONSE = "tribunal-health-response"


class Regulation(StrEnum):
    """`CB/CodeSystem/regulation` (Task.reasonCode)."""

    REG_6_1_C = "6-1-c"
    REG_6_1_F = "6-1-f"
    REG_6_1_H = "6-1-h"
    ANNUAL_REVIEW = "annual-review"


class TaskOutputType(StrEnum):
    """`CB/CodeSystem/task-output-type`."""

    ADVICE = "advice"
    NOT_ON_WAITING_LIST = "not-on-waiting-list"
    NOT_SEEN_IN_LAST_12_MONTHS = "not-seen-in-last-12-months"
    CLOCK_EXCEPTION = "clock-exception"


class ClockExceptionReason(StrEnum):
    """`CB/CodeSystem/clock-exception-reason` (SEND Regulations 2014 reg 8(2))."""

    EXCEPTIONAL_PERSONAL_CIRCUMSTANCES = "exceptional-personal-circumstances"
    ABSENT_FROM_AREA_4_WEEKS = "absent-from-area-4-weeks"
    MISSED_APPOINTMENT = "missed-appointment"


class TaskInputType(StrEnum):
    """`CB/CodeSystem/task-input-type`."""

    SUPPORTING_INFORMATION = "supporting-information"
    TRIBUNAL_ORDER_RECEIVED = "tribunal-order-received"
    #: The former name of `tribunal-order-received`, still accepted on input.
    TRIBUNAL_DECISION_DATE = "tribunal-decision-date"


class TaskStatusReason(StrEnum):
    """`CB/CodeSystem/task-status-reason`."""

    NOT_KNOWN_TO_SERVICE = "not-known-to-service"
    INCOMPATIBLE_WITH_DUTIES = "incompatible-with-duties"
    ADVERSE_EFFECT_ON_FUNCTIONS = "adverse-effect-on-functions"
    WRONG_SERVICE = "wrong-service"
    WITHDRAWN_BY_REQUESTER = "withdrawn-by-requester"
    FORWARDED = "forwarded"


class SixWeekMeasure(StrEnum):
    """`CB/CodeSystem/six-week-measure` (MeasureReport.group.code)."""

    REQUESTS_RECEIVED = "requests-received"
    DUE_IN_PERIOD = "due-in-period"
    COMPLETED_WITHIN_6_WEEKS = "completed-within-6-weeks"
    COMPLETED_LATE = "completed-late"
    OUTSTANDING_OVERDUE = "outstanding-overdue"
    NOT_KNOWN_TO_SERVICE = "not-known-to-service"
    DECLINED_WITH_REASONS = "declined-with-reasons"
    FORWARDED = "forwarded"
    LATE_WITH_CLOCK_EXCEPTION = "late-with-clock-exception"
    PERCENT_WITHIN_6_WEEKS = "percent-within-6-weeks"


class TaskBusinessStatus(StrEnum):
    """`CB/CodeSystem/task-business-status`."""

    ON_TRACK = "on-track"
    DUE_SOON = "due-soon"
    OVERDUE = "overdue"
    COMPLETED_ON_TIME = "completed-on-time"
    COMPLETED_LATE = "completed-late"
    CLOSED_WITHOUT_ADVICE = "closed-without-advice"


class DocumentType(StrEnum):
    """`CB/CodeSystem/document-type` (DocumentReference.type)."""

    HEALTH_ADVICE = "health-advice"
    OTHER_HEALTH_ADVICE = "other-health-advice"
    NOT_KNOWN_NOTICE = "not-known-notice"
    REASONS_FOR_NOT_COMPLYING = "reasons-for-not-complying"
    DCO_QA_FEEDBACK = "dco-qa-feedback"
    DRAFT_PLAN_HEALTH_SECTIONS = "draft-plan-health-sections"
    SUPPORTING_INFORMATION = "supporting-information"
    ANNUAL_REVIEW_ADVICE = "annual-review-advice"


class AccessDenialReason(StrEnum):
    """`CB/CodeSystem/access-denial-reason` (OperationOutcome.issue.details)."""

    NO_AGREEMENT = "no-agreement"
    NO_CONSENT = "no-consent"
    CONSENT_WITHDRAWN = "consent-withdrawn"
    CONSENT_REFUSED = "consent-refused"
    CONSENT_REFUSED_BY_COMPETENT_CHILD = "consent-refused-by-competent-child"
    CONSENT_LAPSED_YOUNG_PERSON = "consent-lapsed-young-person"
    DECISION_MAKER_NOT_VALID = "decision-maker-not-valid"
    NOT_A_RECIPIENT = "not-a-recipient"
    OUT_OF_SCOPE_AGE = "out-of-scope-age"
    INSUFFICIENT_SCOPE = "insufficient-scope"
    BREAK_GLASS_NOT_PERMITTED = "break-glass-not-permitted"


class AgreementAction(StrEnum):
    """`CB/CodeSystem/agreement-action`: the fixed codes of `Contract.term.action`.

    R4 requires `action.type`, `action.subject.reference`... to be present on every term
    action; `access.md` says the project publishes fixed codes for them. Not in
    `terminology.md`'s table: this service's own addition, documented in the README.
    """

    SHARE_INFORMATION = "share-information"


class OperatorAction(StrEnum):
    """`CB/CodeSystem/operator-action`: AuditEvent.subtype of operator and console actions.

    FHIR's `restful-interaction` codes describe API calls only; operator work (bootstrap,
    key rotation, retention, exports, checkpoints) and console actions need codes of their
    own. This service's own addition, documented in the README.
    """

    BOOTSTRAP = "bootstrap"
    REGISTRY_CHANGE = "registry-change"
    KEY_ROTATION = "key-rotation"
    RETENTION = "retention"
    AUDIT_EXPORT = "audit-export"
    AUDIT_CHECKPOINT = "audit-checkpoint"
    AUDIT_VERIFY = "audit-verify"
    REPORT = "report"
    LOGIN = "login"
    LOGOUT = "logout"
    LOGIN_FAILED = "login-failed"
    PAGE_VIEW = "page-view"
    BREAK_GLASS_REVIEW = "break-glass-review"


#: Code systems published by this service, by name, with the enum that holds their codes.
CODE_SYSTEMS: Final[dict[str, type[StrEnum]]] = {
    "organisation-role": OrganisationRole,
    "purpose": Purpose,
    "decision-maker-basis": DecisionMakerBasis,
    "parental-responsibility": ParentalResponsibility,
    "young-person-representative": YoungPersonRepresentative,
    "consent-validity": ConsentValidity,
    "consent-review": ConsentReview,
    "review-reason": ReviewReason,
    "capacity-assessment-type": CapacityAssessmentType,
    "capacity-assessment-outcome": CapacityAssessmentOutcome,
    "task-type": TaskType,
    "regulation": Regulation,
    "task-output-type": TaskOutputType,
    "clock-exception-reason": ClockExceptionReason,
    "task-input-type": TaskInputType,
    "task-status-reason": TaskStatusReason,
    "six-week-measure": SixWeekMeasure,
    "task-business-status": TaskBusinessStatus,
    "document-type": DocumentType,
    "access-denial-reason": AccessDenialReason,
    "agreement-action": AgreementAction,
    "operator-action": OperatorAction,
}

# Extensions (all CB/StructureDefinition/<name>)
EXT_DECISION_MAKER: Final = structure_definition_url("decision-maker")
EXT_CAPACITY_ASSESSMENT: Final = structure_definition_url("capacity-assessment")
EXT_AUDIT_CHAIN: Final = structure_definition_url("audit-chain")
EXT_SHA256: Final = structure_definition_url("sha256")

# Profiles
PROFILE_CONSENT: Final = structure_definition_url("send-consent")
PROFILE_ADVICE_REQUEST: Final = structure_definition_url("send-advice-request")
PROFILE_HEALTH_ADVICE: Final = structure_definition_url("send-health-advice")
PROFILE_DATA_SHARING_AGREEMENT: Final = structure_definition_url("send-data-sharing-agreement")

# HL7 / external systems
CONSENT_SCOPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC_SYSTEM: Final = "http://loinc.org"
CONSENT_ACTION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentaction"
PARTICIPATION_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONFIDENTIALITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
AUDIT_EVENT_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DICOM_DCM_SYSTEM: Final = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL_INTERACTION_SYSTEM: Final = "http://hl7.org/fhir/restful-interaction"
