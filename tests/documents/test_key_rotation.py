"""`exchange keys rotate` (`exchange.key_rotation`): every live data key re-wrapped under a
new KEK in batches, content still opening; a key that does not open left and counted; a
document crypto-shredded while the rotation runs stays shredded; two rotations at once
take turns with the keyring."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from exchange.audit.events import AuditKind
from exchange.audit.models import AuditRecord
from exchange.crypto.keyring import keyring_changing, load_keyring
from exchange.crypto.keys import LocalKeyProvider, WrappedKey
from exchange.db import Database
from exchange.documents.models import BinaryRow
from exchange.documents.pipeline import add_binary, open_content, seal_content
from exchange.errors import Gone
from exchange.install import prepare_data_directory
from exchange.settings import Settings
from exchange.storage.blobs import FileBlobStore
from tests.cli_runner import exchange
from tests.factories import FrozenClock, make_organisation, pdf_bytes

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


class _Service:
    """An initialised data directory on the test's database, with its store and keyring."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.data_dir = tmp_path / "var"
        assert exchange("init", data_dir=self.data_dir, database_url=database_url).returncode == 0
        self.url = database_url
        self.settings = Settings(data_dir=self.data_dir, database_url=database_url)
        prepare_data_directory(self.settings, FrozenClock())
        self.database = Database(database_url)
        self.store = FileBlobStore(self.data_dir / "blobs")
        self.uploader = make_organisation(self.database, "PRV88")

    def provider(self) -> LocalKeyProvider:
        return LocalKeyProvider(load_keyring(self.settings.keyring_path))

    def upload(self, count: int) -> list[BinaryRow]:
        provider = self.provider()
        rows = []
        for _ in range(count):
            content = seal_content(self.store, provider, [pdf_bytes(500)], "application/pdf", 10**6)
            with self.database.transaction() as session:
                rows.append(add_binary(session, content, self.uploader, NOW))  # type: ignore[arg-type]
        return rows

    def binary(self, row: BinaryRow) -> BinaryRow:
        with self.database.transaction() as session:
            found = session.get(BinaryRow, row.id)
            assert found is not None
            session.expunge(found)
            return found

    def opens(self, row: BinaryRow) -> bool:
        stored = self.binary(row)
        return b"".join(open_content(stored, self.store, self.provider())).startswith(b"%PDF")

    def rotation_details(self) -> list[dict[str, str]]:
        with self.database.transaction() as session:
            records = session.scalars(
                select(AuditRecord).where(AuditRecord.kind == AuditKind.KEY_ROTATION.value)
            ).all()
            return [
                {
                    d["type"]: d["valueString"]
                    for e in json.loads(record.payload)["entity"]
                    for d in e.get("detail", [])
                }
                for record in records
            ]


@pytest.fixture
def service(tmp_path: Path, fresh_database_url: str) -> _Service:
    made = _Service(tmp_path, fresh_database_url)
    yield made  # type: ignore[misc]
    made.database.dispose()


def test_keys_rotate_rewraps_in_batches_and_content_still_opens(
    service: _Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven keys in batches of three (three transactions and a last empty read), from
    the command as an operator runs it."""
    monkeypatch.setattr("exchange.key_rotation.BATCH", 3)
    rows = service.upload(7)
    result = exchange("keys", "rotate", data_dir=service.data_dir, database_url=service.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "KEK version 2 added; 7 data key(s) re-wrapped"
    for row in rows:
        assert service.binary(row).key_ref == "local:2"
        assert service.opens(row)
    assert service.rotation_details() == [
        {"kek-version": "2", "rewrapped": "7", "not-opened": "0", "totp-secrets": "0"}
    ]
    again = exchange("keys", "rotate", data_dir=service.data_dir, database_url=service.url)
    assert again.stdout.strip() == "KEK version 3 added; 7 data key(s) re-wrapped"
    assert all(service.opens(row) for row in rows)


def test_a_key_that_does_not_open_is_left_as_it_was_and_counted(service: _Service) -> None:
    good, damaged = service.upload(2)
    with service.database.transaction() as session:
        stored = session.get(BinaryRow, damaged.id)
        assert stored is not None and stored.wrapped_key is not None
        broken = bytes([stored.wrapped_key[0] ^ 1]) + stored.wrapped_key[1:]
        stored.wrapped_key = broken
    result = exchange("keys", "rotate", data_dir=service.data_dir, database_url=service.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "KEK version 2 added; 1 data key(s) re-wrapped; 1 data key(s) did not open and were "
        "left as they were (see the log)"
    )
    assert service.binary(good).key_ref == "local:2" and service.opens(good)
    left = service.binary(damaged)
    assert (left.wrapped_key, left.key_ref) == (broken, "local:1")
    assert service.rotation_details()[0]["not-opened"] == "1"


def test_a_document_shredded_while_the_rotation_runs_stays_shredded(
    service: _Service, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Retention destroys a key after the rotation has read it and before it is written
    back: the re-wrapped key must not be written over the destroyed one (the content
    would be readable again). On SQLite the batch's read and write hold the writer lock
    throughout, so retention cannot come between them."""
    if backend == "sqlite":
        pytest.skip("SQLite's writer lock keeps retention out of a batch")
    kept, shredded = service.upload(2)
    rewrap = LocalKeyProvider.rewrap

    def rewrap_while_retention_runs(
        provider: LocalKeyProvider, key: WrappedKey, context: str
    ) -> WrappedKey:
        if context == str(shredded.id):
            # Retention's own statement, committed by another connection meanwhile.
            with service.database.transaction() as session:
                session.execute(
                    update(BinaryRow)
                    .where(BinaryRow.id == shredded.id)
                    .values(wrapped_key=None, destroyed=NOW)
                )
        return rewrap(provider, key, context)

    monkeypatch.setattr(LocalKeyProvider, "rewrap", rewrap_while_retention_runs)
    result = exchange("keys", "rotate", data_dir=service.data_dir, database_url=service.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "KEK version 2 added; 1 data key(s) re-wrapped"
    gone = service.binary(shredded)
    assert gone.wrapped_key is None and gone.destroyed is not None
    with pytest.raises(Gone):
        service.opens(shredded)
    assert service.opens(kept)


def test_two_rotations_take_turns_with_the_keyring(service: _Service) -> None:
    """A rotation waits while another is changing the keyring (held here), then adds the
    next version to the keyring as it is by then: two at once would each add "version 2"
    and the later save would drop the other's, with every key wrapped under it."""
    (row,) = service.upload(1)
    outcome: list[str] = []

    def rotate() -> None:
        result = exchange("keys", "rotate", data_dir=service.data_dir, database_url=service.url)
        outcome.append(result.stdout.strip())

    with keyring_changing(service.settings.keyring_path):
        waiting = threading.Thread(target=rotate)
        waiting.start()
        waiting.join(timeout=1)
        assert waiting.is_alive()  # held back by the other rotation's lock
    waiting.join(timeout=30)
    assert outcome == ["KEK version 2 added; 1 data key(s) re-wrapped"]
    assert sorted(load_keyring(service.settings.keyring_path).keks) == [1, 2]
    assert service.opens(row)


def test_a_key_made_under_the_new_kek_while_the_rotation_runs_is_not_counted(
    service: _Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server wraps new keys under the new version as soon as the keyring file is
    saved, and commits them between the rotation's batches: such a key is left as it
    is, and not counted."""
    import uuid

    from exchange.key_rotation import rotate_keys

    monkeypatch.setattr("exchange.key_rotation.BATCH", 1)
    service.upload(2)
    made: list[BinaryRow] = []

    def upload_between_batches(_: int) -> None:
        if not made:
            with monkeypatch.context() as patched:
                # Its id the last in id order, so the rotation comes to it (a data key is
                # bound to its Binary's id, so the id is chosen, not changed afterwards).
                patched.setattr(
                    "exchange.documents.pipeline.uuid.uuid4", lambda: uuid.UUID(int=2**128 - 1)
                )
                made.extend(service.upload(1))  # a fresh provider: the saved keyring, v2

    rotation = rotate_keys(
        service.database, service.settings.keyring_path, NOW, upload_between_batches
    )
    assert (rotation.kek_version, rotation.data_keys, rotation.not_opened) == (2, 2, 0)
    assert made and made[0].key_ref == "local:2" and service.opens(made[0])


def test_a_rotation_that_stops_part_way_loses_nothing_and_is_audited(
    service: _Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails at the second batch (a fault not otherwise causable here): the
    first batch stays re-wrapped, every key still opens, the failure is audited with what
    was done, and the next rotation finishes the work."""
    from exchange import key_rotation
    from exchange.db import DatabaseError

    monkeypatch.setattr(key_rotation, "BATCH", 2)
    rows = service.upload(5)
    real_rewrap = key_rotation._rewrap
    calls: list[int] = []

    def failing_second_batch(*args: object) -> tuple[int, int]:
        calls.append(1)
        if len(calls) == 2:
            raise DatabaseError("the database went away")
        return real_rewrap(*args)  # type: ignore[arg-type]

    with monkeypatch.context() as patched:
        patched.setattr(key_rotation, "_rewrap", failing_second_batch)
        with pytest.raises(DatabaseError):
            key_rotation.rotate_keys(service.database, service.settings.keyring_path, NOW)
    refs = sorted(service.binary(row).key_ref for row in rows)
    assert refs == ["local:1", "local:1", "local:1", "local:2", "local:2"]
    assert all(service.opens(row) for row in rows)
    with service.database.transaction() as session:
        (failed,) = session.scalars(
            select(AuditRecord).where(AuditRecord.kind == AuditKind.KEY_ROTATION.value)
        ).all()
        assert json.loads(failed.payload)["outcome"] == "8"
    assert service.rotation_details()[0]["rewrapped"] == "2"
    again = key_rotation.rotate_keys(service.database, service.settings.keyring_path, NOW)
    assert (again.kek_version, again.data_keys) == (3, 5)
    assert all(service.binary(row).key_ref == "local:3" and service.opens(row) for row in rows)
