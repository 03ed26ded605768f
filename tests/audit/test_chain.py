"""The hash chain: sealing, verification, append-only triggers and tamper detection,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from exchange.audit import sealer
from exchange.audit.chain import (
    GENESIS_HASH,
    canonical_json,
    chain_hash,
    seal_pending,
    verify_chain,
)
from exchange.audit.models import AuditRecord
from exchange.audit.service import record
from exchange.db import Database
from tests.factories import FrozenClock, audit_entry


def _append(db: Database, clock: FrozenClock, count: int) -> None:
    with db.transaction() as session:
        for number in range(count):
            record(session, audit_entry(number), clock)
    with db.transaction() as session:
        seal_pending(session)


def test_records_are_sealed_in_order_into_a_verifying_chain(
    db: Database, clock: FrozenClock
) -> None:
    _append(db, clock, 5)
    with db.transaction() as session:
        rows = session.scalars(select(AuditRecord).order_by(AuditRecord.sequence)).all()
        assert [row.sequence for row in rows] == [1, 2, 3, 4, 5]
        assert rows[0].previous_hash == GENESIS_HASH
        for before, after in pairwise(rows):
            assert after.previous_hash == before.hash
        assert rows[2].hash == chain_hash(rows[1].hash or "", 3, rows[2].payload)
        result = verify_chain(session)
    assert result.ok
    assert (result.checked, result.last_sequence, result.unsealed) == (5, 5, 0)


def test_payload_is_canonical_fhir_audit_event(db: Database, clock: FrozenClock) -> None:
    with db.transaction() as session:
        row = record(session, audit_entry(1, query="identifier=x"), clock)
        stored = session.scalars(
            select(AuditRecord.payload).where(AuditRecord.event_id == row.event_id)
        ).one()
        payload = json.loads(row.payload)
    assert stored == row.payload
    assert row.payload == json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert payload["resourceType"] == "AuditEvent"
    assert payload["recorded"] == "2026-11-23T12:00:00.000Z"
    identifiers = [
        e["what"]["identifier"]["value"]
        for e in payload["entity"]
        if "identifier" in e.get("what", {})
    ]
    assert "urn:ietf:params:oauth:jti:jti-1" in identifiers
    assert "req-1" in identifiers


def test_unsealed_records_wait_and_later_commits_extend_the_chain(
    db: Database, clock: FrozenClock
) -> None:
    _append(db, clock, 3)
    with db.transaction() as session:
        record(session, audit_entry(10), clock)
    with db.transaction() as session:
        assert verify_chain(session).unsealed == 1
        assert seal_pending(session) == 1
    with db.transaction() as session:
        result = verify_chain(session)
    assert result.ok and result.last_sequence == 4 and result.unsealed == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET payload = '{}' WHERE sequence = 2",
        "UPDATE audit_event SET hash = NULL, sequence = NULL WHERE sequence = 2",
        "UPDATE audit_event SET outcome = '4' WHERE sequence = 2",
        "DELETE FROM audit_event WHERE sequence = 2",
    ],
)
def test_triggers_refuse_changes_to_sealed_records(
    db: Database, clock: FrozenClock, statement: str
) -> None:
    _append(db, clock, 3)
    with pytest.raises(DBAPIError, match="append-only"), db.transaction() as session:
        session.execute(text(statement))


def test_trigger_refuses_changing_content_while_sealing(db: Database, clock: FrozenClock) -> None:
    with db.transaction() as session:
        record(session, audit_entry(1), clock)
    with pytest.raises(DBAPIError, match="append-only"), db.transaction() as session:
        session.execute(
            text(
                "UPDATE audit_event SET sequence = 1, previous_hash = 'x', hash = 'y', "
                "outcome = '8'"
            )
        )


def test_truncate_is_refused_on_postgresql(db: Database, clock: FrozenClock, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite has no TRUNCATE (DELETE is refused above)")
    _append(db, clock, 1)
    with pytest.raises(DBAPIError, match="append-only"), db.transaction() as session:
        session.execute(text("TRUNCATE audit_event CASCADE"))


def drop_audit_triggers(session: object, backend: str) -> None:
    """What an attacker with DDL rights would do first."""
    execute = session.execute  # type: ignore[attr-defined]
    if backend == "postgresql":
        execute(text("DROP TRIGGER audit_event_append_only ON audit_event"))
        execute(text("DROP TRIGGER audit_event_no_truncate ON audit_event"))
    else:
        execute(text("DROP TRIGGER audit_event_no_delete"))
        execute(text("DROP TRIGGER audit_event_seal_only"))


TAMPERING = {
    "modified": [
        "UPDATE audit_event SET payload = replace(payload, 'client-3', 'client-9') "
        "WHERE sequence = 4"
    ],
    "deleted": ["DELETE FROM audit_event WHERE sequence = 4"],
    "relinked": [
        # Delete 4 and renumber the rest, keeping the sequence gap-free: the links break.
        "DELETE FROM audit_event WHERE sequence = 4",
        "UPDATE audit_event SET sequence = sequence - 1 WHERE sequence > 4",
    ],
    "reordered": [
        "UPDATE audit_event SET sequence = -1 WHERE sequence = 4",
        "UPDATE audit_event SET sequence = 4 WHERE sequence = 5",
        "UPDATE audit_event SET sequence = 5 WHERE sequence = -1",
    ],
    "inserted": [
        # Make room at 4 (top down: the sequence is unique), then forge a record there.
        *[
            f"UPDATE audit_event SET sequence = sequence + 1 WHERE sequence = {n}"
            for n in range(7, 3, -1)
        ],
    ],
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_verify_names_the_first_broken_sequence(
    db: Database, clock: FrozenClock, backend: str, how: str
) -> None:
    _append(db, clock, 7)
    with db.transaction() as session:
        drop_audit_triggers(session, backend)
        for statement in TAMPERING[how]:
            session.execute(text(statement))
        if how == "inserted":
            # A careful forger links the new record to record 3 with a correct hash ...
            previous = (
                session.scalars(select(AuditRecord.hash).where(AuditRecord.sequence == 3)).one()
                or ""
            )
            forged = record(session, audit_entry(99), clock)
            session.execute(
                update(AuditRecord)
                .where(AuditRecord.event_id == forged.event_id)
                .values(
                    sequence=4,
                    previous_hash=previous,
                    hash=chain_hash(previous, 4, forged.payload),
                )
            )
    with db.transaction() as session:
        result = verify_chain(session)
    assert not result.ok
    # ... but the record after it no longer links, nor matches its own position.
    assert result.broken_sequence == (5 if how == "inserted" else 4), result.problem


#: What audit payloads and checkpoint statements hold: no floats.
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(_JSON_VALUES)
def test_canonical_json_is_what_the_chain_always_wrote(value: object) -> None:
    # Records and checkpoints written before the switch to orjson stay verifiable.
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected


def test_seal_all_stops_at_a_batch_with_room_to_spare(
    db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that was not full took every committed record, so `seal_all` does not go
    round again: under load that kept the sealer sealing a few records at a time."""
    monkeypatch.setattr(sealer, "SEAL_BATCH", 2)
    with db.transaction() as session:
        for number in range(5):
            record(session, audit_entry(number), clock)
    batches: list[int] = []

    def counted(session: Session, batch: int) -> int:
        batches.append(seal_pending(session, batch))
        return batches[-1]

    monkeypatch.setattr(sealer, "seal_pending", counted)
    assert sealer.seal_all(db) == 5
    assert batches == [2, 2, 1]
    with db.transaction() as session:
        result = verify_chain(session)
    assert result.ok and (result.checked, result.unsealed) == (5, 0)
