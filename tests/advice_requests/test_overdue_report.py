"""`exchange report overdue` lists open requests past their due date."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from exchange.advice_requests.service import store_task
from exchange.agreements.models import Organisation
from exchange.audit.events import Actor
from exchange.db import Database
from exchange.patients.service import register
from exchange.registry.service import apply_bootstrap
from exchange.registry.specs import parse_bootstrap
from tests.cli_runner import exchange
from tests.conftest import world_document
from tests.factories import FrozenClock, nhs_number, patient_json, task_json


def test_overdue_report(tmp_path: Path, fresh_database_url: str) -> None:
    data_dir = tmp_path / "var"
    clock = FrozenClock(datetime(2026, 9, 1, 9, tzinfo=UTC))
    database = Database(fresh_database_url)
    with database.transaction() as session:
        apply_bootstrap(session, parse_bootstrap(world_document()), clock, Actor.operator())
        orgs = {o.ods: o for o in session.scalars(select(Organisation))}
        for seed, owner in ((1, "PRV01"), (2, "ICB01")):
            patient = register(
                session, patient_json(nhs_number(seed), "2015-03-02"), orgs["LA01"].id, clock.now()
            ).patient
            store_task(
                session,
                task_json(str(patient.id), owner),
                patient,
                orgs["LA01"],
                orgs[owner],
                clock.now(),
            )
            clock.advance(days=30)
    database.dispose()
    result = exchange(
        "report", "overdue", "--format", "json", data_dir=data_dir, database_url=fresh_database_url
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    # Received 2026-09-01 (due 2026-10-13) and 2026-10-01 (due 2026-11-12): both overdue today.
    assert [(r["owner"], r["due"]) for r in rows] == [
        ("PRV01", "2026-10-13"),
        ("ICB01", "2026-11-12"),
    ]
    assert rows[0]["case_reference"] == "EHC-2026-00412"
    only_icb = exchange(
        "report", "overdue", "--owner", "ICB01", data_dir=data_dir, database_url=fresh_database_url
    )
    assert "1 overdue request(s)" in only_icb.stdout
