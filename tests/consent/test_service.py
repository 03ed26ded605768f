"""The consent use cases below the API: the order in which their rules refuse (404, 412,
422, 403: `access.md`), who may read a Consent, the search filters, and what each one
audits. No app and no HTTP: a session, a Caller and the clock."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from exchange.agreements.models import Organisation
from exchange.audit.events import Actor
from exchange.audit.models import AuditRecord
from exchange.caller import Caller
from exchange.consent import service
from exchange.consent.queries import Category, ConsentFilters, Tag, category_of, tag_of
from exchange.db import Database
from exchange.errors import AccessDenied, Invalid, Malformed, NotFound, VersionMismatch
from exchange.patients.service import TASK_REQUESTER, grant_access, register_patient
from exchange.registry.service import set_agreement_status
from exchange.search import Paging
from tests.factories import CB, FrozenClock, consent_json, nhs_number, patient_json

DATE_TIME = "2026-10-01T10:00:00+01:00"


@pytest.fixture
def session(world: None, db: Database) -> Iterator[Session]:
    """One transaction in the test's rolled-back database, with the OAuth world registered."""
    with db.transaction() as session:
        yield session


@pytest.fixture
def now(clock: FrozenClock) -> datetime:
    return clock.now()


def caller(session: Session, ods: str) -> Caller:
    """An organisation's case system, as the API would name it."""
    organisation = session.scalars(select(Organisation).where(Organisation.ods == ods)).one()
    return Caller(
        organisation_id=organisation.id,
        organisation=ods,
        role=organisation.role,
        break_glass_allowed=organisation.break_glass,
        actor=Actor(client_id=f"{ods.lower()}-case-system", organisation=ods),
    )


@pytest.fixture
def la01(session: Session) -> Caller:
    return caller(session, "LA01")


@pytest.fixture
def la02(session: Session) -> Caller:
    return caller(session, "LA02")


_numbers = iter(range(80_000, 90_000))


def register(
    session: Session, who: Caller, now: datetime, number: str | None = None
) -> tuple[uuid.UUID, str]:
    """Register a child for `who`; its Patient id and NHS number."""
    number = number or nhs_number(next(_numbers))
    registration = register_patient(session, who, patient_json(number, "2015-03-02"), None, now)
    return registration.patient.id, number


def recorded(
    session: Session, who: Caller, patient_id: uuid.UUID, now: datetime, **kwargs: Any
) -> dict[str, Any]:
    """Record a Consent (a mother's permit for ehcna-advice unless told) as `who`."""
    return service.record_consent(
        session, who, consent_json(str(patient_id), DATE_TIME, **kwargs), now
    ).resource


def audit_rows(session: Session, kind: str) -> list[AuditRecord]:
    """The audit records of one kind, oldest first."""
    session.flush()
    return list(
        session.scalars(
            select(AuditRecord).where(AuditRecord.kind == kind).order_by(AuditRecord.id)
        )
    )


def references(row: AuditRecord) -> set[str]:
    """The resources an audit record names."""
    return {
        entity["what"]["reference"]
        for entity in json.loads(row.payload)["entity"]
        if "reference" in entity.get("what", {})
    }


# --- recording: 400 -> 404 -> 422 -> 403 ---------------------------------------------------


def test_not_a_consent_is_malformed_before_the_patient_is_looked_up(
    session: Session, la02: Caller, la01: Caller, now: datetime
) -> None:
    patient_id, _ = register(session, la01, now)
    body = {**consent_json(str(patient_id), DATE_TIME), "resourceType": "Patient"}
    with pytest.raises(Malformed):
        service.record_consent(
            session, la02, body, now
        )  # LA02 cannot see the patient: still 400 first


def test_an_invisible_patient_is_404_before_the_consent_is_validated(
    session: Session, la01: Caller, la02: Caller, now: datetime
) -> None:
    patient_id, _ = register(session, la01, now)
    body = consent_json(str(patient_id), "2099-01-01T00:00:00Z")  # in the future: 422 for LA01
    with pytest.raises(NotFound):
        service.record_consent(session, la02, body, now)
    with pytest.raises(Invalid) as refused:
        service.record_consent(session, la01, body, now)
    assert refused.value.issues[0].expression == ("Consent.dateTime",)


def test_a_patient_reference_that_is_no_uuid_is_404_after_validation(
    session: Session, la01: Caller, now: datetime
) -> None:
    with pytest.raises(NotFound):
        service.record_consent(session, la01, consent_json("not-a-uuid", DATE_TIME), now)
    with pytest.raises(Invalid):
        service.record_consent(
            session, la01, consent_json("not-a-uuid", "2099-01-01T00:00:00Z"), now
        )


def test_an_invalid_consent_is_422_before_the_agreement_is_checked(
    session: Session, la01: Caller, now: datetime, clock: FrozenClock
) -> None:
    patient_id, _ = register(session, la01, now)
    set_agreement_status(session, "dsa-2026-01", "terminated", clock, Actor.operator())
    with pytest.raises(Invalid):
        service.record_consent(
            session, la01, consent_json(str(patient_id), "2099-01-01T00:00:00Z"), now
        )
    with pytest.raises(AccessDenied) as refused:
        service.record_consent(session, la01, consent_json(str(patient_id), DATE_TIME), now)
    assert refused.value.reason == "no-agreement"
    # The refusal names the patient the caller can see, for its audit record.
    assert refused.value.subject.patient_id == patient_id


def test_recording_adds_the_default_policy_and_the_recorder_and_is_audited(
    session: Session, la01: Caller, now: datetime
) -> None:
    patient_id, _ = register(session, la01, now)
    resource = recorded(session, la01, patient_id, now)
    assert resource["policy"] == [{"uri": f"{CB}/policy/send-information-sharing"}]
    assert resource["organization"][0]["identifier"]["value"] == "LA01"
    create = audit_rows(session, "rest:create")[-1]
    assert references(create) == {f"Consent/{resource['id']}", f"Patient/{patient_id}"}
    assert create.patient_id == patient_id
    assert create.review_reason is None


def test_a_reversal_by_another_organisation_is_contested_and_flagged(
    session: Session, la01: Caller, la02: Caller, now: datetime
) -> None:
    patient_id, number = register(session, la01, now)
    recorded(session, la01, patient_id, now)
    register(session, la02, now, number)
    reversal = service.record_consent(
        session, la02, consent_json(str(patient_id), DATE_TIME, provision="deny"), now
    )
    assert reversal.contested
    assert {"system": f"{CB}/CodeSystem/consent-review", "code": "contested"} in [
        {k: tag[k] for k in ("system", "code")} for tag in reversal.resource["meta"]["tag"]
    ]
    assert audit_rows(session, "rest:create")[-1].review_reason == "contested-consent"


# --- a status change: 404 -> 412 -> 422 -> 403 --------------------------------------------


@pytest.fixture
def withdrawable(session: Session, la01: Caller, la02: Caller, now: datetime) -> dict[str, Any]:
    """LA01's Consent for a child LA02 has registered but has no Task for (yet)."""
    patient_id, number = register(session, la01, now)
    resource = recorded(session, la01, patient_id, now)
    register(session, la02, now, number)
    return resource


def _change(
    session: Session,
    who: Caller,
    resource: dict[str, Any],
    now: datetime,
    if_match: str | None = None,
    **changes: Any,
) -> service.Recorded:
    return service.change_consent_status(
        session, who, uuid.UUID(resource["id"]), {**resource, **changes}, if_match, now
    )


def _in_care(session: Session, resource: dict[str, Any], who: Caller, now: datetime) -> None:
    """`who` becomes a Task's requester for the Consent's patient: it may now read it."""
    patient_id = uuid.UUID(resource["patient"]["reference"].removeprefix("Patient/"))
    grant_access(session, patient_id, who.organisation_id, TASK_REQUESTER, now)


def test_a_consent_the_caller_cannot_read_is_404_whatever_else_is_wrong(
    session: Session, la02: Caller, withdrawable: dict[str, Any], now: datetime
) -> None:
    # Registering the child is no care relationship (access.md): LA02 cannot read it.
    with pytest.raises(NotFound):
        _change(session, la02, withdrawable, now, 'W/"9"', status="inactive", provision={})


def test_another_organisations_change_is_412_before_403(
    session: Session, la02: Caller, withdrawable: dict[str, Any], now: datetime
) -> None:
    _in_care(session, withdrawable, la02, now)
    with pytest.raises(VersionMismatch):
        _change(session, la02, withdrawable, now, 'W/"9"', status="inactive")


def test_another_organisations_change_is_422_before_403(
    session: Session, la01: Caller, la02: Caller, withdrawable: dict[str, Any], now: datetime
) -> None:
    _in_care(session, withdrawable, la02, now)
    with pytest.raises(Malformed):  # not a Consent at all
        _change(session, la02, withdrawable, now, resourceType="Patient")
    with pytest.raises(Invalid) as reworded:  # more than a status change
        _change(
            session,
            la02,
            withdrawable,
            now,
            status="inactive",
            provision={**withdrawable["provision"], "type": "deny"},
        )
    assert reworded.value.issues[0].expression == ("Consent.provision",)
    with pytest.raises(Invalid) as future:
        _change(
            session, la02, withdrawable, now, status="inactive", dateTime="2099-01-01T00:00:00Z"
        )
    assert future.value.issues[0].expression == ("Consent.dateTime",)
    with pytest.raises(Invalid) as elsewhere:
        _change(session, la02, withdrawable, now, id=str(uuid.uuid4()), status="inactive")
    assert elsewhere.value.issues[0].expression == ("Consent.id",)
    withdrawn = _change(session, la01, withdrawable, now, status="inactive").resource
    with pytest.raises(Invalid) as final:  # a withdrawn Consent stays withdrawn, whoever asks
        _change(session, la02, withdrawn, now, status="active")
    assert final.value.issues[0].expression == ("Consent.status",)


def test_a_pure_status_change_by_another_organisation_is_403(
    session: Session, la02: Caller, withdrawable: dict[str, Any], now: datetime
) -> None:
    _in_care(session, withdrawable, la02, now)
    with pytest.raises(service.NotRecorder) as refused:
        _change(session, la02, withdrawable, now, 'W/"1"', status="inactive")
    assert refused.value.code == "forbidden"
    assert f"Consent/{withdrawable['id']}" in [
        entity.reference for entity in refused.value.subject.entities
    ]


def test_the_recorder_withdraws_and_the_server_keeps_its_elements(
    session: Session, la01: Caller, withdrawable: dict[str, Any], now: datetime
) -> None:
    # The server's own elements (meta, organization) may be left out of the body.
    body = {
        key: value for key, value in withdrawable.items() if key not in ("meta", "organization")
    }
    withdrawn = service.change_consent_status(
        session, la01, uuid.UUID(withdrawable["id"]), {**body, "status": "inactive"}, 'W/"1"', now
    )
    assert withdrawn.resource["status"] == "inactive"
    assert withdrawn.resource["meta"]["versionId"] == "2"
    assert withdrawn.resource["organization"] == withdrawable["organization"]
    history = service.consent_history(session, la01, uuid.UUID(withdrawable["id"]), now)
    assert [version["status"] for version in history] == ["inactive", "active"]


# --- reading: the recorder and the patient's Task parties ---------------------------------


def test_who_reads_a_consent(
    session: Session, la01: Caller, la02: Caller, withdrawable: dict[str, Any], now: datetime
) -> None:
    consent_id = uuid.UUID(withdrawable["id"])
    assert service.read_consent(session, la01, consent_id, now)["id"] == withdrawable["id"]
    with pytest.raises(NotFound):  # a registrant only
        service.read_consent(session, la02, consent_id, now)
    with pytest.raises(NotFound):
        service.read_consent_version(session, la02, consent_id, 1, now)
    _in_care(session, withdrawable, la02, now)
    assert service.read_consent_version(session, la02, consent_id, 1, now)["status"] == "active"
    with pytest.raises(NotFound):
        service.read_consent_version(session, la02, consent_id, 2, now)
    with pytest.raises(NotFound):
        service.read_consent_version(session, la02, consent_id, None, now)


# --- searching ------------------------------------------------------------------------------


def test_search_filters(session: Session, la01: Caller, now: datetime) -> None:
    patient_id, number = register(session, la01, now)
    recorded(session, la01, patient_id, now)
    other_id, other_number = register(session, la01, now)
    recorded(session, la01, other_id, now, provision="deny")

    def total(**filters: Any) -> int:
        return service.search_consents(
            session, la01, ConsentFilters(**filters), Paging(), None, now
        ).total

    assert total(patient_ids=[patient_id, other_id]) == 2
    assert total(nhs_numbers=[number]) == 1
    assert total(nhs_numbers=[number, other_number]) == 2  # alternatives
    assert total(nhs_numbers=[]) == 0  # no number is both of two (repeated, AND)
    assert total(patient_ids=[]) == 0
    assert total(patient_ids=[patient_id], statuses=["active"]) == 1
    assert total(patient_ids=[patient_id], statuses=[]) == 0
    assert total(patient_ids=[patient_id], categories=[[Category.PATIENT_CONSENT]]) == 1
    either = [Category.PATIENT_CONSENT, Category.OTHER]
    assert total(patient_ids=[patient_id], categories=[either]) == 1  # one of them
    assert (
        total(patient_ids=[patient_id], categories=[[Category.PATIENT_CONSENT], [Category.OTHER]])
        == 0  # both
    )
    assert total(patient_ids=[patient_id], tags=[[Tag.CONTESTED]]) == 0
    assert total(patient_ids=[patient_id], tags=[[Tag.OTHER]]) == 0


def test_search_tokens_mean_what_the_server_sets() -> None:
    assert category_of("http://loinc.org", "59284-0") is Category.PATIENT_CONSENT
    assert category_of(None, "59284-0") is Category.PATIENT_CONSENT
    assert category_of("http://snomed.info/sct", "59284-0") is Category.OTHER
    assert tag_of(f"{CB}/CodeSystem/consent-review", "contested") is Tag.CONTESTED
    assert tag_of(None, "decision-maker-not-valid") is Tag.DECISION_MAKER_NOT_VALID
    assert tag_of(f"{CB}/CodeSystem/consent-validity", "contested") is Tag.OTHER


# --- deciding -------------------------------------------------------------------------------


def test_evaluate_is_404_for_a_caller_who_cannot_see_the_patient(
    session: Session, la01: Caller, la02: Caller, now: datetime
) -> None:
    patient_id, number = register(session, la01, now)
    recorded(session, la01, patient_id, now)
    with pytest.raises(NotFound):
        service.evaluate_consent(session, la02, number, "PRV01", "ehcna-advice", now, now)
    with pytest.raises(NotFound):
        service.evaluate_consent(
            session, la01, nhs_number(99_999), "PRV01", "ehcna-advice", now, now
        )


def test_evaluate_is_audited_with_its_outcome_and_deciding_consent(
    session: Session, la01: Caller, now: datetime
) -> None:
    patient_id, number = register(session, la01, now)
    consent = recorded(session, la01, patient_id, now)
    permit = service.evaluate_consent(session, la01, number, "PRV01", "ehcna-advice", now, now)
    deny = service.evaluate_consent(session, la01, number, "PRV01", "tribunal", now, now)
    assert permit.permit and permit.deciding is not None and permit.deciding.id == consent["id"]
    assert not deny.permit
    rows = audit_rows(session, "rest:operation")[-2:]
    assert [json.loads(row.payload)["outcomeDesc"] for row in rows] == [
        "permit",
        "deny: no-consent",
    ]
    assert references(rows[0]) == {f"Consent/{consent['id']}", f"Patient/{patient_id}"}
    assert all(row.patient_id == patient_id and row.agent_org == "LA01" for row in rows)


def test_the_operator_explains_any_patients_decision(
    session: Session, la01: Caller, now: datetime
) -> None:
    patient_id, number = register(session, la01, now)
    recorded(session, la01, patient_id, now)
    decision = service.explain_consent(
        session, Actor.operator(), number, "PRV01", "ehcna-advice", now, now
    )
    assert decision.permit
    row = audit_rows(session, "rest:operation")[-1]
    payload = json.loads(row.payload)
    assert payload["outcomeDesc"] == "permit"
    assert row.agent_user is not None and row.agent_user.startswith("operator@")
    assert references(row) == {f"Patient/{patient_id}"}
    assert {d["type"]: d["valueString"] for d in payload["entity"][0]["detail"]} == {
        "operation": "consent-explain",
        "recipient": "PRV01",
        "purpose": "ehcna-advice",
    }
    with pytest.raises(NotFound):
        service.explain_consent(
            session, Actor.operator(), nhs_number(99_999), "PRV01", "ehcna-advice", now, now
        )
