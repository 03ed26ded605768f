"""Consent use cases: record a consent decision, read it (and its versions), change its
status (withdrawal), search, and decide a disclosure (`consent.md`, `access.md`); each
audited. Also the decision's inputs for other domains (`evaluate`, used by the document
read decision).

Every use case takes the session of the one transaction its front door opened, the
`Caller` (or, for the operator's explanation, the operator's `Actor`) and the current
instant; it decides in the spec's order (404, 412, 422, 403) and raises a domain error, or
writes and returns what the caller may see.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from exchange.agreements.models import Organisation
from exchange.agreements.queries import uncovered_purposes
from exchange.agreements.resources import organisation_reference
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Entity, Outcome
from exchange.audit.service import record
from exchange.caller import Caller
from exchange.clock import LONDON, london_date
from exchange.codes import (
    DEFAULT_CONSENT_POLICY,
    AccessDenialReason,
    ConsentReview,
    ConsentValidity,
    OrganisationRole,
    ReviewReason,
    code_system_url,
)
from exchange.consent import cache
from exchange.consent.decision import Decision, decide
from exchange.consent.models import ConsentRow
from exchange.consent.profile import consent_profile_issues, decision_maker_warning
from exchange.consent.queries import (
    ConsentFilters,
    consents_of,
    consents_of_patient,
    current_resources,
    current_versions,
    others_standing_consents,
    visible_consent,
)
from exchange.consent.records import CapacityAssessment, ConsentRecord, consent_record
from exchange.errors import AccessDenied, Forbidden, Invalid, Issue, NotFound, Subject, invalid
from exchange.fhir.validation import check_resource_type, validate_resource
from exchange.patients.models import Patient
from exchange.patients.service import find_by_nhs_number, visible_patient
from exchange.search import Found, Paging, keyset_page
from exchange.versions import (
    all_versions,
    check_version,
    keep_version,
    read_version,
    stamp,
    version_as_of,
)

_VALIDITY_SYSTEM: Final = code_system_url("consent-validity")
_REVIEW_SYSTEM: Final = code_system_url("consent-review")
#: Statuses a Consent can no longer leave: withdrawal, refusal and errors are final.
FINAL_STATUSES: Final = frozenset({"inactive", "rejected", "entered-in-error"})
#: What a status change may leave out or differ in: the server's own elements (`text` is
#: the client's, so it may not change either).
_UNCHANGEABLE_KEYS: Final = ("meta", "id", "status", "organization")


class NotRecorder(Forbidden):
    """Only the organisation that recorded a Consent may change it (403); the others
    withdraw by recording a new deny Consent."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """A stored Consent version as served; why its decision-maker is not valid (the
    warning a client sees), if so; and whether it reverses another organisation's
    decision (tagged `contested`, for IG review)."""

    resource: dict[str, Any]
    warning: str | None
    contested: bool


# --- the decision's inputs ----------------------------------------------------------------


def records_for(
    session: Session, patient: Patient, exclude: uuid.UUID | None = None
) -> list[ConsentRecord]:
    """Every stored Consent of a patient as decision input (all statuses)."""
    return [
        consent_record(row.resource, str(row.id), str(patient.id))
        for row in consents_of_patient(session, patient.id)
        if row.id != exclude
    ]


def assessment_pool(records: list[ConsentRecord]) -> list[CapacityAssessment]:
    """The capacity assessments known for a patient: those contained in any of their
    consents except ones entered in error."""
    return [a for r in records if r.status != "entered-in-error" for a in r.assessments]


def records_as_of(
    session: Session,
    patient_id: uuid.UUID,
    at: datetime,
    current: Sequence[tuple[uuid.UUID, int]] | None = None,
) -> list[ConsentRecord]:
    """A patient's Consents as they stood at `at` (`consent.md`, "As it stood at t"): each
    with the status of its version current then, so a withdrawal after `at` does not reach
    back, and one before it counts. A Consent recorded later but dated earlier takes part
    as first recorded (its `dateTime`, not its recording, says when it was made).

    Which versions are current is asked afresh every time, unless the caller read them
    already (`current`: every Consent's (id, version), none changed after `at`); the parsed
    record of a version current before `at` comes from the per-process cache when it is
    there (`exchange/consent/cache.py`)."""
    cached = cache.usable(session)
    versions: Sequence[tuple[uuid.UUID, int, datetime | None]] = (
        current_versions(session, patient_id)
        if current is None
        else [(consent_id, version, None) for consent_id, version in current]
    )
    records: dict[uuid.UUID, ConsentRecord] = {}
    wanted = []
    for consent_id, version, last_updated in versions:
        if last_updated is not None and last_updated > at:
            records[consent_id] = _record_as_of(session, patient_id, consent_id, at, None)
            continue
        kept = cache.RECORDS.get((consent_id, version)) if cached else None
        if kept is not None:
            records[consent_id] = kept
        else:
            wanted.append(consent_id)
    for consent_id, (version, last_updated, resource) in current_resources(session, wanted).items():
        if last_updated > at:  # a version committed since the first look
            records[consent_id] = _record_as_of(session, patient_id, consent_id, at, resource)
            continue
        records[consent_id] = consent_record(resource, str(consent_id), str(patient_id))
        if cached:
            cache.RECORDS.put((consent_id, version), records[consent_id])
    return [records[consent_id] for consent_id, _, _ in versions]


def _record_as_of(
    session: Session,
    patient_id: uuid.UUID,
    consent_id: uuid.UUID,
    at: datetime,
    current: dict[str, Any] | None,
) -> ConsentRecord:
    """The record of a Consent changed since `at`, from its version current then (or its
    first, if it was recorded later)."""
    resource = (
        version_as_of(session, "Consent", consent_id, at)
        or read_version(session, "Consent", consent_id, 1)
        or current
    )
    if resource is None:
        (_, _, resource) = current_resources(session, [consent_id])[consent_id]
    return consent_record(resource, str(consent_id), str(patient_id))


def evaluate(
    session: Session, patient: Patient, recipient: str, purpose: str, at: datetime
) -> Decision:
    """The consent decision at `at` for disclosing this patient's information to
    `recipient`, over the Consents as they stood then."""
    return evaluate_for(session, patient.id, patient.birth_date, recipient, purpose, at)


def evaluate_for(
    session: Session,
    patient_id: uuid.UUID,
    birth_date: date,
    recipient: str,
    purpose: str,
    at: datetime,
    current: Sequence[tuple[uuid.UUID, int]] | None = None,
) -> Decision:
    """`evaluate`, given the patient's id and birth date (a document read has them from
    the query that found the document, and may have the Consents' `current` versions too:
    `records_as_of`)."""
    records = records_as_of(session, patient_id, at, current)
    return decide(birth_date, records, recipient, purpose, at)


# --- storing ------------------------------------------------------------------------------


def _reverses_another_organisation(
    session: Session, patient: Patient, record: ConsentRecord, organisation_id: uuid.UUID
) -> bool:
    """Whether `record` reverses, for one of its purposes, the latest decision another
    organisation recorded for that purpose (permit after deny, or deny after permit)."""
    others = [
        consent_record(row.resource, str(row.id), str(patient.id))
        for row in others_standing_consents(session, patient.id, organisation_id)
    ]
    for purpose in record.purposes:
        latest = next((other for other in others if purpose in other.purposes), None)
        if latest is not None and latest.provision_type != record.provision_type:
            return True
    return False


def _tagged(resource: dict[str, Any], maker_invalid: bool, contested: bool) -> dict[str, Any]:
    """The resource with the server's tags (decision-maker-not-valid, contested) set or
    cleared; a client cannot set or remove them."""
    tagged = dict(resource)
    meta = dict(tagged.get("meta") or {})
    tags = [
        t
        for t in meta.get("tag") or []
        if not (isinstance(t, dict) and t.get("system") in (_VALIDITY_SYSTEM, _REVIEW_SYSTEM))
    ]
    if maker_invalid:
        tags.append(
            {
                "system": _VALIDITY_SYSTEM,
                "code": ConsentValidity.DECISION_MAKER_NOT_VALID.value,
                "display": "The decision-maker was not valid at the consent's date",
            }
        )
    if contested:
        tags.append(
            {
                "system": _REVIEW_SYSTEM,
                "code": ConsentReview.CONTESTED.value,
                "display": "Reverses another organisation's latest decision for the same purpose",
            }
        )
    if tags:
        meta["tag"] = tags
    else:
        meta.pop("tag", None)
    tagged["meta"] = meta
    return tagged


def _validity(
    session: Session, patient: Patient, resource: dict[str, Any], consent_id: uuid.UUID
) -> str | None:
    record = consent_record(resource, str(consent_id), str(patient.id))
    pool = assessment_pool([*records_for(session, patient, exclude=consent_id), record])
    return decision_maker_warning(patient.birth_date, record, pool)


def _store_new(
    session: Session,
    resource: dict[str, Any],
    patient: Patient,
    organisation_id: uuid.UUID,
    now: datetime,
) -> Recorded:
    """Store a new (validated) Consent, tagging an invalid decision-maker and a decision
    that reverses another organisation's (it is still applied: `access.md`)."""
    consent_id = uuid.uuid4()
    warning = _validity(session, patient, resource, consent_id)
    record = consent_record(resource, str(consent_id), str(patient.id))
    contested = warning is None and _reverses_another_organisation(
        session, patient, record, organisation_id
    )
    stored = stamp(_tagged(resource, warning is not None, contested), consent_id, 1, now)
    session.add(
        ConsentRow(
            id=consent_id,
            patient_id=patient.id,
            organisation_id=organisation_id,
            status=stored["status"],
            date_time=consent_record(stored, str(consent_id), str(patient.id)).date_time,
            maker_valid=warning is None,
            contested=contested,
            version=1,
            last_updated=now,
            resource=stored,
        )
    )
    session.flush()
    keep_version(session, stored, now)
    return Recorded(stored, warning, contested)


def _store_version(
    session: Session, row: ConsentRow, resource: dict[str, Any], patient: Patient, now: datetime
) -> Recorded:
    """Store a new version of a Consent (a status change, checked)."""
    warning = _validity(session, patient, resource, row.id)
    cache.mark_written(session)
    row.version += 1
    stored = stamp(_tagged(resource, warning is not None, row.contested), row.id, row.version, now)
    row.resource = stored
    row.status = stored["status"]
    row.maker_valid = warning is None
    row.last_updated = now
    keep_version(session, stored, now)
    return Recorded(stored, warning, row.contested)


# --- use cases ------------------------------------------------------------------------------


def _entities(
    patient_id: uuid.UUID, consent_id: uuid.UUID | str | None = None
) -> tuple[Entity, ...]:
    patient = Entity(f"Patient/{patient_id}", "patient")
    return (Entity(f"Consent/{consent_id}", "consent"), patient) if consent_id else (patient,)


def _patient_id_of(data: dict[str, Any]) -> uuid.UUID | None:
    """The patient a Consent body names, if it names one well enough to look up."""
    patient = data.get("patient")
    reference = patient.get("reference") if isinstance(patient, dict) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        return None
    try:
        return uuid.UUID(reference.removeprefix("Patient/"))
    except ValueError:
        return None


def _valid_consent(data: Any, now: datetime) -> dict[str, Any]:
    """R4 and the Consent profile, the default policy added first (R4 ppc-1: a Consent
    names a policy), and a decision that is not in the future."""
    if isinstance(data, dict) and "policy" not in data and "policyRule" not in data:
        data = {**data, "policy": [{"uri": DEFAULT_CONSENT_POLICY}]}
    resource = validate_resource(data, "Consent", consent_profile_issues)
    moment = datetime.fromisoformat(resource["dateTime"].replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LONDON)
    if moment > now:
        raise invalid("Consent.dateTime", "Consent.dateTime is in the future", "value")
    return resource


def _check_care_order(session: Session, resource: dict[str, Any], caller: Caller) -> None:
    """A decision by a local authority under a care order (an Organization performer) is
    recorded by that authority itself, registered as an LA (`consent.md`): no one else may
    claim it for them, since its refusal outranks the parents' (Children Act 1989 s.33(3))."""
    maker = consent_record(resource, "new", "").maker
    if maker.performer != "organization":
        return
    claimed = session.scalars(
        select(Organisation).where(Organisation.ods == maker.organisation)
    ).first()
    if (
        claimed is None
        or claimed.role != OrganisationRole.LA
        or claimed.id != caller.organisation_id
    ):
        raise invalid(
            "Consent.performer[0]",
            "a local authority's care-order decision is recorded by that "
            "authority itself, registered as an LA: "
            "the performer must be the recording organisation",
        )


def _organisation(session: Session, organisation_id: uuid.UUID) -> Organisation:
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:  # a caller always belongs to a registered organisation
        raise RuntimeError("the caller's organisation is not registered")
    return organisation


def record_consent(session: Session, caller: Caller, data: Any, now: datetime) -> Recorded:
    """Record a consent decision for a patient the caller can see (404 otherwise), valid
    under the profile (422), for purposes every one of which an agreement in force with
    the caller's organisation covers (403 no-agreement). A decision that reverses another
    organisation's is stored tagged `contested` and flagged for IG review."""
    consent = check_resource_type(data, "Consent")
    patient_id = _patient_id_of(consent)
    patient = visible_patient(session, patient_id, caller.organisation_id) if patient_id else None
    if patient_id is not None and patient is None:
        raise NotFound("Patient", patient_id)
    resource = _valid_consent(consent, now)
    if (
        patient is None
    ):  # the profile takes `Patient/<any id>`; one that is not a UUID is no patient
        raise NotFound("Patient")
    _check_care_order(session, resource, caller)
    resource["organization"] = [
        organisation_reference(_organisation(session, caller.organisation_id))
    ]
    purposes = [purpose.get("code") for purpose in resource["provision"].get("purpose", [])]
    missing = uncovered_purposes(session, caller.organisation_id, purposes, london_date(now))
    if missing:
        raise AccessDenied(
            AccessDenialReason.NO_AGREEMENT,
            f"no data-sharing agreement in force covers {', '.join(missing)} for this organisation",
            subject=Subject(_entities(patient.id), patient.id),
        )
    recorded = _store_new(session, resource, patient, caller.organisation_id, now)
    record(
        session,
        caller.audit_entry(
            AuditKind.CREATE,
            entities=_entities(patient.id, recorded.resource["id"]),
            patient_id=patient.id,
            review_reason=ReviewReason.CONTESTED_CONSENT if recorded.contested else None,
        ),
        at=now,
    )
    return recorded


def _readable(
    session: Session, caller: Caller, consent_id: uuid.UUID
) -> tuple[ConsentRow, Patient]:
    """The Consent and its patient, if the caller may read it: it recorded it, or it is
    or was a Task party for the patient (404 otherwise, whether or not it exists)."""
    row = visible_consent(session, consent_id, caller.organisation_id)
    patient = session.get(Patient, row.patient_id) if row is not None else None
    if row is None or patient is None:
        raise NotFound("Consent", consent_id)
    return row, patient


def read_consent(
    session: Session, caller: Caller, consent_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """A Consent the caller may read (its recorder and the patient's Task parties)."""
    row, patient = _readable(session, caller, consent_id)
    record(
        session,
        caller.audit_entry(
            AuditKind.READ, entities=_entities(patient.id, row.id), patient_id=patient.id
        ),
        at=now,
    )
    return row.resource


def read_consent_version(
    session: Session, caller: Caller, consent_id: uuid.UUID, version: int | None, now: datetime
) -> dict[str, Any]:
    """One version of a Consent the caller may read (None: a version that cannot exist)."""
    row, patient = _readable(session, caller, consent_id)
    stored = read_version(session, "Consent", row.id, version)
    if stored is None:
        raise NotFound("Consent", f"{consent_id}/_history/{version}")
    record(
        session,
        caller.audit_entry(
            AuditKind.VREAD, entities=_entities(patient.id, row.id), patient_id=patient.id
        ),
        at=now,
    )
    return stored


def consent_history(
    session: Session, caller: Caller, consent_id: uuid.UUID, now: datetime
) -> list[dict[str, Any]]:
    """Every version of a Consent the caller may read, newest first."""
    row, patient = _readable(session, caller, consent_id)
    versions = all_versions(session, "Consent", row.id)
    record(
        session,
        caller.audit_entry(
            AuditKind.HISTORY, entities=_entities(patient.id, row.id), patient_id=patient.id
        ),
        at=now,
    )
    return versions


def _status_change_issues(current: dict[str, Any], resource: dict[str, Any]) -> list[Issue]:
    """Why `resource` is not a status change of `current`: anything but the status
    differs, or the status leaves a final one."""
    changed = sorted(
        key
        for key in set(current) | set(resource)
        if key not in _UNCHANGEABLE_KEYS and current.get(key) != resource.get(key)
    )
    if changed:
        return [
            Issue(
                "error",
                "business-rule",
                f"only Consent.status may change (not {name})",
                (f"Consent.{name}",),
            )
            for name in changed
        ]
    if current["status"] in FINAL_STATUSES and resource["status"] != current["status"]:
        return [
            Issue(
                "error",
                "business-rule",
                f"a Consent that is {current['status']} cannot change status",
                ("Consent.status",),
            )
        ]
    return []


def change_consent_status(
    session: Session,
    caller: Caller,
    consent_id: uuid.UUID,
    data: Any,
    if_match: str | None,
    now: datetime,
) -> Recorded:
    """Change a Consent's status (withdrawal: `inactive`): only the status may change, not
    out of a final status, and only by the organisation that recorded it. Decided in the
    spec's order: 404 (cannot read it), 412 (If-Match), 422 (not a valid Consent, or more
    than a status change), 403 (another organisation's)."""
    row, patient = _readable(session, caller, consent_id)
    check_version(row.version, if_match)
    resource = _valid_consent(data, now)
    if resource.get("id") not in (None, str(consent_id)):
        raise invalid("Consent.id", "the resource id does not match the URL", "invariant")
    issues = _status_change_issues(row.resource, resource)
    if issues:
        raise Invalid(issues)
    if row.organisation_id != caller.organisation_id:
        raise NotRecorder(
            "only the recording organisation may change a Consent; "
            "others withdraw by recording a new deny Consent",
            subject=Subject(_entities(patient.id, row.id), patient.id),
        )
    resource["organization"] = row.resource.get("organization", [])
    recorded = _store_version(session, row, resource, patient, now)
    record(
        session,
        caller.audit_entry(
            AuditKind.UPDATE, entities=_entities(patient.id, row.id), patient_id=patient.id
        ),
        at=now,
    )
    return recorded


def search_consents(
    session: Session,
    caller: Caller,
    filters: ConsentFilters,
    paging: Paging,
    query: str | None,
    now: datetime,
) -> Found:
    """The Consents the caller may read that match `filters`, by decision date
    (`Consent.dateTime`), newest first unless told."""
    wanted = consents_of(caller.organisation_id, filters)
    total = session.scalar(select(func.count()).select_from(wanted.subquery())) or 0
    page = keyset_page(
        session,
        wanted,
        paging,
        moment=ConsentRow.date_time,
        tiebreak=ConsentRow.id,
        parse_tiebreak=uuid.UUID,
    )
    record(session, caller.audit_entry(AuditKind.SEARCH, query=query), at=now)
    return Found([row.resource for row in page.rows], total, page.next)


def _outcome_desc(decision: Decision) -> str:
    return "permit" if decision.permit else f"deny: {decision.reason}"


def evaluate_consent(
    session: Session,
    caller: Caller,
    nhs_number: str,
    recipient: str,
    purpose: str,
    at: datetime,
    now: datetime,
) -> Decision:
    """The consent decision for disclosing a patient's information to `recipient` (an ODS
    code) for `purpose` at `at`, for a caller who can see the patient (404 otherwise);
    audited as an operation with its outcome and the deciding Consent."""
    patient = find_by_nhs_number(session, nhs_number)
    if patient is None or visible_patient(session, patient.id, caller.organisation_id) is None:
        raise NotFound("Patient")
    decision = evaluate(session, patient, recipient, purpose, at)
    deciding = uuid.UUID(decision.deciding.id) if decision.deciding else None
    record(
        session,
        caller.audit_entry(
            AuditKind.OPERATION,
            entities=_entities(patient.id, deciding),
            patient_id=patient.id,
            outcome_desc=_outcome_desc(decision),
        ),
        at=now,
    )
    return decision


def explain_consent(
    session: Session,
    operator: Actor,
    nhs_number: str,
    recipient: str,
    purpose: str,
    at: datetime,
    now: datetime,
) -> Decision:
    """The consent decision as `evaluate_consent` makes it, for the operator at the command
    line (who may look at any patient; 404 for an NHS number no one registered); audited
    as the operator's `consent-explain` operation."""
    patient = find_by_nhs_number(session, nhs_number)
    if patient is None:
        raise NotFound("Patient")
    decision = evaluate(session, patient, recipient, purpose, at)
    record(
        session,
        AuditEntry(
            kind=AuditKind.OPERATION,
            action=Action.EXECUTE,
            outcome=Outcome.SUCCESS,
            actor=operator,
            outcome_desc=_outcome_desc(decision),
            entities=_entities(patient.id),
            patient_id=patient.id,
            details={"operation": "consent-explain", "recipient": recipient, "purpose": purpose},
        ),
        at=now,
    )
    return decision
