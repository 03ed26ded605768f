"""AuditEvents shaped after IHE BALP (audit.md): agent and entity types, the custodian on
document events, and no empty element (FHIR ele-1)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Entity, Outcome, to_fhir

WHEN = datetime(2026, 11, 23, 12, tzinfo=UTC)
LA_CLIENT = Actor(
    client_id="la01-case-system", organisation="LA01", address="203.0.113.9", purpose="ehcna-advice"
)


def _event(**fields: object) -> dict[str, object]:
    values: dict[str, object] = {
        "kind": AuditKind.READ,
        "action": Action.READ,
        "outcome": Outcome.SUCCESS,
        "actor": LA_CLIENT,
    }
    values.update(fields)
    return to_fhir(AuditEntry(**values), uuid.uuid4(), WHEN)  # type: ignore[arg-type]


def _agent_types(event: dict[str, object]) -> list[list[str]]:
    return [
        [c["code"] for c in agent.get("type", {}).get("coding", [])] for agent in event["agent"]
    ]  # type: ignore[attr-defined]


def test_a_disclosure_names_reader_as_destination_and_recipient_and_custodian_as_source() -> None:
    event = _event(
        custodian="PRV01",
        entities=(
            Entity("DocumentReference/x"),
            Entity("Patient/p", "patient"),
            Entity("Contract/c", "agreement"),
            Entity("Consent/k", "consent"),
        ),
    )
    assert _agent_types(event) == [["110152"], ["IRCP"], ["110153"]]
    assert event["agent"][2]["who"]["identifier"]["value"] == "PRV01"  # type: ignore[index]
    roles = {
        e["what"]["reference"]: (e["type"]["code"], e["role"]["code"]) for e in event["entity"]
    }  # type: ignore[attr-defined]
    assert roles == {
        "DocumentReference/x": ("2", "4"),
        "Patient/p": ("1", "1"),
        "Contract/c": ("2", "13"),
        "Consent/k": ("2", "13"),
    }


def test_a_refused_read_is_no_disclosure_but_still_names_the_custodian() -> None:
    event = _event(
        outcome=Outcome.MINOR_FAILURE, custodian="PRV01", outcome_desc="consent-withdrawn"
    )
    assert _agent_types(event) == [["110152"], [], ["110153"]]


def test_a_write_names_the_client_as_source() -> None:
    event = _event(kind=AuditKind.CREATE, action=Action.CREATE)
    assert _agent_types(event)[0] == ["110153"]


def test_a_search_without_parameters_has_no_empty_query() -> None:
    event = _event(kind=AuditKind.SEARCH, query="")
    assert all("query" not in entity for entity in event.get("entity", []))  # type: ignore[attr-defined]
    searched = _event(kind=AuditKind.SEARCH, query="patient=Patient/x")
    assert any(entity.get("query") for entity in searched["entity"])  # type: ignore[attr-defined]
