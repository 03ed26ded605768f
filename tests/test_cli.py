"""The `exchange` command, run as an operator runs it (a real process, real databases)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from exchange import migrate
from exchange.agreements.models import Organisation
from exchange.auth.models import Client
from exchange.db import Database
from exchange.users.models import ConsoleUser
from tests.audit.test_chain import drop_audit_triggers
from tests.cli_runner import Completed, exchange
from tests.factories import EXAMPLE_BOOTSTRAP, example_bootstrap


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


def test_init_creates_everything_once_with_private_modes(data_dir: Path) -> None:
    first = exchange("init", data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    assert f"migrated database from empty to {migrate.head_revision()}" in first.stdout
    second = exchange("init", data_dir=data_dir)
    assert second.returncode == 0
    assert "already initialised" in second.stdout
    for name in ("keyring.json", "console-secret", "exchange.db"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_bootstrap_example_twice_then_no_changes(data_dir: Path, fresh_database_url: str) -> None:
    assert exchange("init", data_dir=data_dir, database_url=fresh_database_url).returncode == 0
    first = exchange(
        "bootstrap", str(EXAMPLE_BOOTSTRAP), data_dir=data_dir, database_url=fresh_database_url
    )
    assert first.returncode == 0, first.stderr
    assert "organisation LA01: created" in first.stdout
    assert "client icb01-dco: created" in first.stdout
    assert "12 change(s) applied" in first.stdout
    second = exchange(
        "bootstrap", str(EXAMPLE_BOOTSTRAP), data_dir=data_dir, database_url=fresh_database_url
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "no changes"
    database = Database(fresh_database_url)
    with database.transaction() as session:
        hashes = session.scalars(select(ConsoleUser.password_hash)).all()
    database.dispose()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)


def test_bootstrap_reports_updates(data_dir: Path, fresh_database_url: str, tmp_path: Path) -> None:
    exchange(
        "bootstrap", str(EXAMPLE_BOOTSTRAP), data_dir=data_dir, database_url=fresh_database_url
    )
    document = example_bootstrap()
    document["organisations"][0]["name"] = "Renamed Borough Council"
    changed = tmp_path / "changed.yaml"
    changed.write_text(json.dumps(document), encoding="utf-8")
    result = exchange("bootstrap", str(changed), data_dir=data_dir, database_url=fresh_database_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "organisation LA01: updated (name)",
        "1 change(s) applied",
    ]


def test_broken_bootstrap_changes_nothing_and_names_the_entry(
    data_dir: Path, fresh_database_url: str, tmp_path: Path
) -> None:
    document = example_bootstrap()
    document["users"][1]["roles"] = ["superuser"]  # the last section: everything before is valid
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document), encoding="utf-8")
    result = exchange("bootstrap", str(broken), data_dir=data_dir, database_url=fresh_database_url)
    assert result.returncode == 1
    assert (
        "users[1] (dco@icb01): role 'superuser' must be one of ig-lead, dco, admin" in result.stderr
    )
    assert "Traceback" not in result.stderr
    database = Database(fresh_database_url)
    with database.transaction() as session:
        counts = [
            session.scalar(select(func.count()).select_from(t))
            for t in (Organisation, Client, ConsoleUser)
        ]
    database.dispose()
    assert counts == [0, 0, 0]


def test_not_json_or_yaml_is_one_sentence(
    data_dir: Path, fresh_database_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"organisations": [', encoding="utf-8")
    result = exchange("bootstrap", str(broken), data_dir=data_dir, database_url=fresh_database_url)
    assert result.returncode == 1
    assert "not valid JSON or YAML" in result.stderr


def test_commands_before_init_say_so(data_dir: Path) -> None:
    result = exchange("bootstrap", str(EXAMPLE_BOOTSTRAP), data_dir=data_dir)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "error: the database is not initialised or not up to date: run `exchange init`."
    )


def test_a_database_that_cannot_be_reached_is_one_sentence(data_dir: Path) -> None:
    result = exchange(
        "agreement",
        "list",
        data_dir=data_dir,
        database_url="postgresql+psycopg://postgres@127.0.0.1:9/exchange?connect_timeout=5",
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: the database cannot be reached "
        "(check EXCHANGE_DATABASE_URL and that it is running)."
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EXCHANGE_LOG_FORMAT", "xml"),
        ("EXCHANGE_BLOB_STORE", "ftp"),
        ("EXCHANGE_MAX_DOCUMENT_BYTES", "lots"),
    ],
)
def test_invalid_setting_stops_naming_the_variable(
    data_dir: Path, variable: str, value: str
) -> None:
    result = exchange("init", data_dir=data_dir, **{variable: value})
    assert result.returncode == 1
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
    assert not data_dir.exists()


def test_audit_verify_passes_then_fails_naming_the_altered_sequence(
    data_dir: Path, fresh_database_url: str, backend: str
) -> None:
    exchange("init", data_dir=data_dir, database_url=fresh_database_url)
    for _ in range(2):
        exchange("client", "disable", "la01-ig", data_dir=data_dir, database_url=fresh_database_url)
        exchange(
            "bootstrap", str(EXAMPLE_BOOTSTRAP), data_dir=data_dir, database_url=fresh_database_url
        )
    good = exchange("audit", "verify", data_dir=data_dir, database_url=fresh_database_url)
    assert good.returncode == 0, good.stderr
    assert "audit chain verified: 3 record(s) from sequence 1 to 3" in good.stdout
    checkpoint = exchange("audit", "checkpoint", data_dir=data_dir, database_url=fresh_database_url)
    assert "checkpoint signed at sequence 3" in checkpoint.stdout
    database = Database(fresh_database_url)
    with database.transaction() as session:
        drop_audit_triggers(session, backend)
        session.execute(
            text(
                "UPDATE audit_event SET payload = replace(payload, 'enabled', 'ENABLED') "
                "WHERE sequence = 2"
            )
        )
    database.dispose()
    bad = exchange("audit", "verify", data_dir=data_dir, database_url=fresh_database_url)
    assert bad.returncode == 1
    assert "the audit chain is broken at sequence 2" in bad.stderr


def test_checkpoint_detects_a_rewritten_history(
    data_dir: Path, fresh_database_url: str, backend: str
) -> None:
    """Recomputing every hash after a change defeats the chain, not the signed checkpoint."""
    from exchange.audit.chain import chain_hash

    exchange("init", data_dir=data_dir, database_url=fresh_database_url)
    exchange(
        "bootstrap", str(EXAMPLE_BOOTSTRAP), data_dir=data_dir, database_url=fresh_database_url
    )
    exchange("audit", "checkpoint", data_dir=data_dir, database_url=fresh_database_url)
    database = Database(fresh_database_url)
    with database.transaction() as session:
        drop_audit_triggers(session, backend)
        rows = session.execute(
            text("SELECT sequence, payload FROM audit_event ORDER BY sequence")
        ).all()
        previous = "0" * 64
        for sequence, payload in rows:
            forged = payload.replace("operator@", "intruder@") if sequence == 1 else payload
            digest = chain_hash(previous, sequence, forged)
            session.execute(
                text(
                    "UPDATE audit_event SET payload = :p, previous_hash = :prev, hash = :h "
                    "WHERE sequence = :s"
                ),
                {"p": forged, "prev": previous, "h": digest, "s": sequence},
            )
            previous = digest
    database.dispose()
    result = exchange("audit", "verify", data_dir=data_dir, database_url=fresh_database_url)
    assert result.returncode == 1
    assert "the chain no longer has the hash it signed" in result.stderr


def test_registry_administration_commands(
    data_dir: Path, fresh_database_url: str, tmp_path: Path
) -> None:
    def run(*args: str, stdin: str | None = None) -> Completed:
        return exchange(*args, data_dir=data_dir, database_url=fresh_database_url, stdin=stdin)

    assert run("init").returncode == 0
    assert (
        run("org", "add", "ICB09", "--name", "NHS Nine ICB", "--role", "icb").stdout.strip()
        == "organisation ICB09: created"
    )
    assert run("org", "add", "LA09", "--name", "Nine Council", "--role", "la").returncode == 0
    assert (
        "agreement dsa-9: created"
        in run(
            "agreement",
            "add",
            "dsa-9",
            "--title",
            "Nine",
            "--party",
            "LA09",
            "--party",
            "ICB09",
            "--purpose",
            "ehcna-advice",
            "--start",
            "2026-01-01",
        ).stdout
    )
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(example_bootstrap()["clients"][0]["jwks"]), encoding="utf-8")
    added = run(
        "client",
        "add",
        "la09-system",
        "--org",
        "LA09",
        "--scope",
        "system/Patient.rs",
        "--jwks",
        str(jwks),
    )
    assert added.stdout.strip() == "client la09-system: created", added.stderr
    bad_scope = run(
        "client",
        "add",
        "la09-x",
        "--org",
        "LA09",
        "--scope",
        "system/Patient.xyz",
        "--jwks",
        str(jwks),
    )
    assert (
        bad_scope.returncode == 1
        and "permissions must be a subsequence of 'cruds'" in bad_scope.stderr
    )
    assert (
        run("client", "disable", "la09-system").stdout.strip()
        == "client la09-system: updated (enabled)"
    )
    assert "la09-system  LA09  disabled" in run("client", "list").stdout
    assert (
        run("agreement", "terminate", "dsa-9").stdout.strip() == "agreement dsa-9: updated (status)"
    )
    assert "dsa-9      terminated" in run("agreement", "list").stdout
    assert (
        run(
            "user",
            "add",
            "ig@la09",
            "--org",
            "LA09",
            "--role",
            "ig-lead",
            "--password-stdin",
            stdin="correct horse battery\n",
        ).stdout.strip()
        == "user ig@la09: created"
    )
    short = run("user", "reset-password", "ig@la09", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 12 characters" in short.stderr
    assert run("user", "reset-totp", "ig@la09").stdout.strip() == "user ig@la09: updated (totp)"
    unknown = run("user", "reset-totp", "nobody@la09")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: no console user is called 'nobody@la09'."
    assert run("user", "disable", "ig@la09").stdout.strip() == "user ig@la09: updated (enabled)"
    assert run("audit", "verify").returncode == 0


def test_consent_explain_decides_through_the_consent_service_as_the_operator(
    data_dir: Path, fresh_database_url: str
) -> None:
    from exchange.audit.events import Actor
    from exchange.audit.models import AuditRecord
    from exchange.caller import Caller
    from exchange.consent.service import record_consent
    from exchange.patients.nhs_number import mask
    from exchange.patients.service import register_patient
    from exchange.registry.service import apply_bootstrap
    from exchange.registry.specs import parse_bootstrap
    from tests.factories import FrozenClock, consent_json, nhs_number, patient_json

    clock, number = FrozenClock(), nhs_number(61_001)
    database = Database(fresh_database_url)
    with database.transaction() as session:
        apply_bootstrap(session, parse_bootstrap(example_bootstrap()), clock, Actor.operator())
        la01 = session.scalars(select(Organisation).where(Organisation.ods == "LA01")).one()
        caller = Caller(
            la01.id, "LA01", la01.role, la01.break_glass, Actor(client_id="la01-case-system")
        )
        patient = register_patient(
            session, caller, patient_json(number, "2015-03-02"), None, clock.now()
        ).patient
        consent = record_consent(
            session, caller, consent_json(str(patient.id), "2026-10-01T10:00:00+01:00"), clock.now()
        ).resource
    args = (
        "consent",
        "explain",
        "--recipient",
        "PRV01",
        "--purpose",
        "ehcna-advice",
        "--at",
        "2026-11-20",
    )
    explained = exchange(
        *args, "--nhs-number", number, data_dir=data_dir, database_url=fresh_database_url
    )
    assert explained.returncode == 0, explained.stderr
    assert f"Consent decision for NHS number {mask(number)}" in explained.stdout
    assert number not in explained.stdout
    assert f"Result: PERMIT (deciding Consent/{consent['id']})" in explained.stdout
    unknown = exchange(
        *args,
        "--nhs-number",
        nhs_number(61_500),
        data_dir=data_dir,
        database_url=fresh_database_url,
    )
    assert (
        unknown.returncode == 1
        and "no patient is registered with that NHS number" in unknown.stderr
    )
    with database.transaction() as session:
        [row] = session.scalars(
            select(AuditRecord).where(AuditRecord.kind == "rest:operation")
        ).all()
        payload = json.loads(row.payload)
        assert (row.patient_id, row.sequence is not None) == (
            patient.id,
            True,
        )  # recorded and sealed
        assert row.agent_user is not None and row.agent_user.startswith("operator@")
    database.dispose()
    assert payload["outcomeDesc"] == "permit"
    assert [entity["what"]["reference"] for entity in payload["entity"]] == [
        f"Patient/{patient.id}"
    ]
    assert {d["type"]: d["valueString"] for d in payload["entity"][0]["detail"]} == {
        "operation": "consent-explain",
        "recipient": "PRV01",
        "purpose": "ehcna-advice",
    }


def test_demo_generates_keys_once_and_is_idempotent(data_dir: Path) -> None:
    first = exchange("demo", data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    assert "demo set loaded" in first.stdout
    assert "LA01 retrieves Alex's advice" in first.stdout  # the story was told
    key_file = data_dir / "demo" / "la01-case-system.private.jwk.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = json.loads(key_file.read_text())
    assert key["kty"] == "EC" and "d" in key
    second = exchange("demo", data_dir=data_dir)
    assert second.returncode == 0, second.stderr
    assert "demo set already loaded" in second.stdout
    assert json.loads(key_file.read_text()) == key
    assert "ig.lead@la01" in second.stdout and str(data_dir / "demo") in second.stdout


def test_the_command_runs_as_a_real_process(data_dir: Path, fresh_database_url: str) -> None:
    """One smoke test through the interpreter and `python -m exchange`: the rest run in-process."""
    from tests.cli_runner import exchange_process

    assert (
        exchange_process("init", data_dir=data_dir, database_url=fresh_database_url).returncode == 0
    )
    result = exchange_process(
        "bootstrap", str(EXAMPLE_BOOTSTRAP), data_dir=data_dir, database_url=fresh_database_url
    )
    assert result.returncode == 0, result.stderr
    assert "12 change(s) applied" in result.stdout
    failed = exchange_process(
        "bootstrap", "/nonexistent.json", data_dir=data_dir, database_url=fresh_database_url
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: ") and "Traceback" not in failed.stderr
