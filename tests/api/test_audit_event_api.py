"""The AuditEvent API: an IG client sees its own organisation's events and nobody else's;
search parameters, paging and the chain extension."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent
from flask.testing import FlaskClient

from exchange import codes
from exchange.audit.sealer import seal_all
from exchange.db import Database
from tests.conftest import Tokens
from tests.factories import FrozenClock


def _generate_activity(client: FlaskClient, tokens: Tokens, clock: FrozenClock) -> None:
    for client_id in ("la01-case-system", "la02-case-system"):
        headers = tokens.headers(client_id)
        client.get("/fhir/Organization", headers=headers)
        clock.advance(seconds=1)
        organisations = client.get("/fhir/Organization?identifier=LA01", headers=headers).get_json()
        client.get(
            f"/fhir/Organization/{organisations['entry'][0]['resource']['id']}", headers=headers
        )
        client.get("/fhir/AuditEvent", headers=headers)  # refused: no AuditEvent scope
        clock.advance(seconds=1)


def _all(client: FlaskClient, headers: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in client.get(f"/fhir/AuditEvent?_count=100{query}", headers=headers).get_json()[
            "entry"
        ]
    ]


def _orgs(event: dict[str, Any]) -> set[str]:
    return {
        a["who"]["identifier"]["value"]
        for a in event["agent"]
        if a["who"]["identifier"]["system"] == codes.ODS_SYSTEM
    }


def test_ig_client_sees_only_its_own_organisations_events(
    client: FlaskClient, tokens: Tokens, clock: FrozenClock
) -> None:
    _generate_activity(client, tokens, clock)
    la01 = tokens.headers("la01-ig")
    la02 = tokens.headers("la02-ig")
    mine, theirs = _all(client, la01), _all(client, la02)
    assert mine and theirs
    assert all(_orgs(e) == {"LA01"} for e in mine)
    assert all(_orgs(e) == {"LA02"} for e in theirs)
    for event in theirs:
        assert client.get(f"/fhir/AuditEvent/{event['id']}", headers=la01).status_code == 404
    assert client.get(f"/fhir/AuditEvent/{mine[0]['id']}", headers=la01).status_code == 200


def test_events_are_valid_r4_with_chain_extension_once_sealed(
    client: FlaskClient, tokens: Tokens, clock: FrozenClock, db: Database
) -> None:
    _generate_activity(client, tokens, clock)
    seal_all(db)
    headers = tokens.headers("la01-ig")
    event = _all(client, headers)[-1]  # the oldest: sealed above (newer ones are not yet)
    AuditEvent.model_validate(event)
    read = client.get(f"/fhir/AuditEvent/{event['id']}", headers=headers)
    assert read.headers["ETag"] == 'W/"1"'
    chain = {x["url"]: x for x in read.get_json()["extension"]}[codes.EXT_AUDIT_CHAIN]
    parts = {x["url"]: x["valueString"] for x in chain["extension"]}
    assert parts["sequence"].isdigit()
    assert len(parts["hash"]) == len(parts["previousHash"]) == 64


def test_search_parameters(client: FlaskClient, tokens: Tokens, clock: FrozenClock) -> None:
    _generate_activity(client, tokens, clock)
    headers = tokens.headers("la01-ig")
    denied = _all(client, headers, "&outcome=4")
    assert denied and all(e["outcome"] == "4" for e in denied)
    reads = _all(client, headers, "&subtype=read")
    assert reads and all(e["subtype"][0]["code"] == "read" for e in reads)
    tokens_only = _all(client, headers, f"&type={codes.DICOM_DCM_SYSTEM}|110114")
    assert tokens_only and all(e["type"]["code"] == "110114" for e in tokens_only)
    by_client = _all(client, headers, f"&agent={codes.CLIENT_ID_SYSTEM}|la01-case-system")
    assert by_client and all(
        e["agent"][0]["who"]["identifier"]["value"] == "la01-case-system" for e in by_client
    )
    organisation_id = reads[0]["entity"][0]["what"]["reference"]
    by_entity = _all(client, headers, f"&entity={organisation_id}")
    assert [e["id"] for e in by_entity] == [
        e["id"] for e in reads if e["entity"][0]["what"]["reference"] == organisation_id
    ]
    assert _all(client, headers, "&purpose=ehcna-advice")
    assert _all(client, headers, "&purpose=safeguarding") == []
    assert _all(client, headers, "&date=ge2026-11-23&date=lt2026-11-24")
    assert _all(client, headers, "&date=lt2026-11-23") == []
    assert _all(client, headers, "&action=C") == []


def test_paging_is_stable_and_total_counts_visible_records(
    client: FlaskClient, tokens: Tokens, clock: FrozenClock
) -> None:
    _generate_activity(client, tokens, clock)
    headers = tokens.headers("la01-ig")
    everything = _all(client, headers)
    seen: list[str] = []
    url: str | None = "/fhir/AuditEvent?_count=3"
    while url:
        page = client.get(url, headers=headers).get_json()
        assert page["total"] >= len(everything)
        seen += [e["resource"]["id"] for e in page["entry"]]
        following = [link["url"] for link in page["link"] if link["relation"] == "next"]
        url = following[0].replace("http://localhost", "") if following else None
        client.get(
            "/fhir/Organization", headers=tokens.headers("la01-case-system")
        )  # new events meanwhile
    # The first page starts with the audit record of the search that listed `everything`;
    # events written while paging are newer than the cursor and never shift the pages.
    assert seen[1:] == [e["id"] for e in everything]
    assert len(seen) == len(set(seen))


def test_bad_search_values_are_400(client: FlaskClient, tokens: Tokens) -> None:
    headers = tokens.headers("la01-ig")
    for query in ("date=yesterday", "_sort=colour", "_cursor=!!!", "colour=blue", "_count=lots"):
        response = client.get(f"/fhir/AuditEvent?{query}", headers=headers)
        assert response.status_code == 400, query
        assert response.get_json()["resourceType"] == "OperationOutcome"


def test_the_custodians_ig_lead_sees_refused_attempts_on_its_documents(
    client: FlaskClient, tokens: Tokens
) -> None:
    from tests.scenario import LA, Scenario

    world = Scenario(client, tokens)
    child = world.child()
    consent = world.consent(child)
    document = world.upload(child, world.request(child))
    world.put(f"/fhir/Consent/{consent['id']}", LA, {**consent, "status": "inactive"})
    assert world.get(f"/fhir/DocumentReference/{document['id']}", LA).status_code == 403
    found = world.get(
        f"/fhir/AuditEvent?entity=DocumentReference/{document['id']}&outcome=4", "prv01-ig"
    ).get_json()
    refused = [e["resource"] for e in found["entry"]]
    assert len(refused) == 1 and refused[0]["outcomeDesc"] == "consent-withdrawn"
    agents = {
        a["who"]["identifier"]["value"]: [c["code"] for c in a.get("type", {}).get("coding", [])]
        for a in refused[0]["agent"]
    }
    assert agents["PRV01"] == ["110153"] and agents["LA01"] == []
