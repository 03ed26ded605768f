"""The per-process cache of parsed Consent versions (`exchange/consent/cache.py`): a read
still sees every committed change at once, and nothing a transaction wrote itself (and may
roll back) is kept. Across gunicorn workers over HTTP: tests/api/test_consent_across_workers.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from exchange.agreements.models import Organisation
from exchange.audit.events import Actor
from exchange.caller import Caller
from exchange.consent import cache, service
from exchange.consent.records import ConsentRecord
from exchange.db import Database
from exchange.patients.models import Patient
from exchange.patients.service import register_patient
from tests.factories import FrozenClock, consent_json, nhs_number, patient_json

DATE_TIME = "2026-10-01T10:00:00+01:00"


class Abandoned(Exception):
    """Rolls a transaction back."""


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    cache.RECORDS.clear()
    yield
    cache.RECORDS.clear()


def _la01(session: Session) -> Caller:
    organisation = session.scalars(select(Organisation).where(Organisation.ods == "LA01")).one()
    return Caller(
        organisation_id=organisation.id,
        organisation="LA01",
        role=organisation.role,
        break_glass_allowed=organisation.break_glass,
        actor=Actor(client_id="la01-case-system", organisation="LA01"),
    )


@pytest.fixture
def consented(world: None, db: Database, clock: FrozenClock) -> tuple[uuid.UUID, dict[str, object]]:
    """A child of LA01 with a mother's permit for PRV01's ehcna-advice, committed."""
    with db.transaction() as session:
        la01 = _la01(session)
        patient = register_patient(
            session, la01, patient_json(nhs_number(91_001), "2015-03-02"), None, clock.now()
        ).patient
        resource = service.record_consent(
            session, la01, consent_json(str(patient.id), DATE_TIME), clock.now()
        ).resource
    return patient.id, resource


def _permits(db: Database, patient_id: uuid.UUID, at: datetime) -> bool:
    with db.transaction() as session:
        patient = session.get_one(Patient, patient_id)
        return service.evaluate(session, patient, "PRV01", "ehcna-advice", at).permit


def _kept(consent_id: str, version: int) -> ConsentRecord | None:
    return cache.RECORDS.get((uuid.UUID(consent_id), version))


def _withdraw(session: Session, resource: dict[str, object], now: datetime) -> None:
    service.change_consent_status(
        session,
        _la01(session),
        uuid.UUID(str(resource["id"])),
        {**resource, "status": "inactive"},
        'W/"1"',
        now,
    )


def test_a_decision_keeps_the_version_and_sees_a_withdrawal_at_once(
    db: Database, clock: FrozenClock, consented: tuple[uuid.UUID, dict[str, object]]
) -> None:
    patient_id, resource = consented
    assert _permits(db, patient_id, clock.now())
    kept = _kept(str(resource["id"]), 1)
    assert kept is not None and kept.status == "active"
    assert _permits(db, patient_id, clock.now())  # from the cache: the same answer

    clock.advance(minutes=1)
    with db.transaction() as session:  # another worker's transaction, committed
        _withdraw(session, resource, clock.now())
    assert not _permits(db, patient_id, clock.now())
    withdrawn = _kept(str(resource["id"]), 2)
    assert withdrawn is not None and withdrawn.status == "inactive"
    # As it stood before the withdrawal: version 1 again, from the history.
    assert _permits(db, patient_id, clock.now() - timedelta(seconds=30))


def test_a_transaction_that_wrote_a_version_neither_keeps_nor_uses_it(
    db: Database, clock: FrozenClock, consented: tuple[uuid.UUID, dict[str, object]]
) -> None:
    patient_id, resource = consented
    clock.advance(minutes=1)

    def withdraw_and_abandon(session: Session) -> None:
        _withdraw(session, resource, clock.now())
        patient = session.get_one(Patient, patient_id)
        assert not service.evaluate(session, patient, "PRV01", "ehcna-advice", clock.now()).permit
        raise Abandoned

    with pytest.raises(Abandoned), db.transaction() as session:
        withdraw_and_abandon(session)
    assert _kept(str(resource["id"]), 2) is None  # rolled back: version 2 never was
    assert _permits(db, patient_id, clock.now())


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    records = cache.RecordCache(capacity=2)
    first, second, third = (uuid.uuid4() for _ in range(3))
    record = object.__new__(ConsentRecord)
    records.put((first, 1), record)
    records.put((second, 1), record)
    assert records.get((first, 1)) is record  # first is now the most recently used
    records.put((third, 1), record)
    assert records.get((second, 1)) is None
    assert records.get((first, 1)) is record and records.get((third, 1)) is record
