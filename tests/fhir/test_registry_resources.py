"""Organization and Contract built from the registry are valid R4 and follow the profile."""

from __future__ import annotations

import json

from fhir.resources.R4B.contract import Contract
from fhir.resources.R4B.organization import Organization
from sqlalchemy import select

from exchange import codes
from exchange.agreements.models import Agreement, Organisation
from exchange.agreements.resources import contract_resource, organization_resource
from exchange.audit.events import Actor
from exchange.db import Database
from exchange.fhir.artefacts import Artefacts
from exchange.registry.service import apply_bootstrap
from exchange.registry.specs import parse_bootstrap
from tests.factories import FrozenClock, example_bootstrap


def _load(db: Database, clock: FrozenClock) -> None:
    with db.transaction() as session:
        apply_bootstrap(
            session, parse_bootstrap(example_bootstrap()), clock, Actor(user="ops@example")
        )


def test_organization_is_valid_r4(db: Database, clock: FrozenClock) -> None:
    _load(db, clock)
    with db.transaction() as session:
        icb = session.scalars(select(Organisation).where(Organisation.ods == "ICB01")).one()
        resource = organization_resource(icb)
    Organization.model_validate(resource)
    assert resource["identifier"] == [{"system": codes.ODS_SYSTEM, "value": "ICB01"}]
    assert resource["type"][0]["coding"][0] == {
        "system": codes.code_system_url("organisation-role"),
        "code": "icb",
    }


def test_contract_is_valid_r4_and_follows_the_profile(db: Database, clock: FrozenClock) -> None:
    _load(db, clock)
    with db.transaction() as session:
        agreement = session.scalars(select(Agreement)).one()
        resource = contract_resource(agreement)
    Contract.model_validate(resource)
    assert resource["identifier"] == [{"system": codes.AGREEMENT_SYSTEM, "value": "dsa-2026-01"}]
    assert resource["url"] == f"{codes.CANONICAL_BASE}/agreement/dsa-2026-01"
    assert resource["status"] == "executed"
    assert resource["applies"] == {"start": "2026-01-01", "end": "2028-12-31"}
    assert "subject" not in resource
    assert [s["party"]["identifier"]["value"] for s in resource["signer"]] == [
        "LA01",
        "PRV01",
        "PRV02",
        "ICB01",
    ]
    assert all(
        s["signature"][0]["who"]["identifier"]["value"] == "ops@example" for s in resource["signer"]
    )
    intents = [a["intent"]["coding"][0]["code"] for a in resource["term"][0]["action"]]
    assert intents == sorted(
        ["ehcna-advice", "dco-quality-assurance", "annual-review", "tribunal", "safeguarding"]
    )
    assert (
        resource["term"][0]["offer"]["text"]
        == "SEND health advice data-sharing agreement 2026-2028"
    )
    # The fixed codes the profile publishes are the ones the server writes.
    profile = Artefacts.load().read("StructureDefinition", "send-data-sharing-agreement")
    assert profile is not None
    fixed = {
        e["id"]: e["patternCodeableConcept"]
        for e in profile["differential"]["element"]
        if "patternCodeableConcept" in e
    }
    action = resource["term"][0]["action"][0]
    assert json.dumps(
        fixed["Contract.term.action.type"]["coding"][0], sort_keys=True
    ) == json.dumps(action["type"]["coding"][0], sort_keys=True)
    assert fixed["Contract.term.action.status"]["coding"][0] == action["status"]["coding"][0]
