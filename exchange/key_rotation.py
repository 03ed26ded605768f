"""`exchange keys rotate` (`documents.md`, Encryption; `operations.md`): a new KEK version
in the local keyring, and every key it protects wrapped again under it — each live
document's data key, and each console user's sealed TOTP secret. No content is
re-encrypted, and the older KEK versions stay in the keyring.

National scale holds 10,000,000 documents (`quality.md`). The data keys therefore go in
batches of `BATCH` rows, in id order, each batch read as plain rows and written back in
one statement, in a transaction of its own. Memory stays flat whatever the count (the
whole table used to be loaded into one session: 565 MiB for 100,000 keys,
bench/operator_jobs.py). On SQLite the writer lock is held for one batch at a time, so a
running server's writes go on between batches. A rotation that stops part-way loses
nothing: every key opens under the KEK version its reference names, and running the
command again finishes the work under a newer version.

A key is written back only if it is still the one that was read. Retention may
crypto-shred a document while the rotation runs; a re-wrapped key written over the
destroyed one would make its content readable again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.service import record
from exchange.crypto.keyring import keyring_changing, load_keyring, save_keyring
from exchange.crypto.keys import KeyUnwrapError, LocalKeyProvider, WrappedKey
from exchange.db import Database, DatabaseError, core_connection
from exchange.documents.models import BinaryRow
from exchange.users.service import seal_totp_secrets

log = logging.getLogger("exchange.keys")

#: Data keys re-wrapped in one transaction.
BATCH: Final = 1000

#: The Binaries whose content can still be read: their data key is still held, wrapped.
_LIVE_KEYS: Final = BinaryRow.wrapped_key.is_not(None)

#: A re-wrapped key written back over exactly the key that was read (not over a key that
#: retention has destroyed, nor one changed since).
_WRITE_BACK: Final = (
    update(BinaryRow)
    .where(
        BinaryRow.id == bindparam("row_id"),
        BinaryRow.wrapped_key == bindparam("read_key"),
    )
    .values(wrapped_key=bindparam("new_key"), key_ref=bindparam("new_ref"))
)


@dataclass(frozen=True, slots=True)
class Rotation:
    """What a rotation did."""

    kek_version: int
    #: Data keys now wrapped under the new KEK (those made under it meanwhile not counted).
    data_keys: int
    #: Data keys that did not open and were left as they were (logged; their documents
    #: answer as corrupted, as before the rotation).
    not_opened: int
    #: Console TOTP secrets sealed under the new KEK.
    totp_secrets: int


def live_data_keys(database: Database) -> int:
    """How many data keys a rotation will go through (for its progress bar): a read,
    which on SQLite takes no writer lock."""
    with database.read_session() as session:
        count = session.scalar(select(func.count()).select_from(BinaryRow).where(_LIVE_KEYS))
    return count or 0


def rotate_keys(
    database: Database,
    keyring_path: Path,
    now: datetime,
    progress: Callable[[int], object] | None = None,
) -> Rotation:
    """Add a KEK version to the keyring at `keyring_path`, wrap every key under it, and
    audit the rotation as the operator (the audit record counts what changed)."""
    with keyring_changing(keyring_path):
        keyring = load_keyring(keyring_path).with_new_kek()
        # Saved first: a key wrapped under the new version must never be stored while
        # the version itself is not.
        save_keyring(keyring_path, keyring)
        provider = LocalKeyProvider(keyring)
        rewrapped = not_opened = 0
        after: uuid.UUID | None = None
        try:
            while True:
                with database.transaction() as session:
                    batch = _batch_after(session, after)
                    if batch:
                        done, failed = _rewrap(session, provider, batch)
                        rewrapped, not_opened = rewrapped + done, not_opened + failed
                if not batch:
                    break
                after = batch[-1][0]
                if progress is not None:
                    progress(len(batch))
            with database.transaction() as session:
                secrets = seal_totp_secrets(session, provider)
                rotation = Rotation(keyring.current_kek_version, rewrapped, not_opened, secrets)
                record(session, _audit_entry(rotation), at=now)
        except Exception:
            # The batches committed so far stay done: the rotation's failure is recorded
            # with them (if the database still answers), then raised.
            _record_failure(
                database, Rotation(keyring.current_kek_version, rewrapped, not_opened, 0), now
            )
            raise
    return rotation


def _record_failure(database: Database, partial: Rotation, now: datetime) -> None:
    try:
        with database.transaction() as session:
            record(session, _audit_entry(partial, Outcome.SERIOUS_FAILURE), at=now)
    except DatabaseError:  # the rotation's own error is the one to raise
        log.error("the key rotation's failure could not be audited")


def _batch_after(session: Session, after: uuid.UUID | None) -> list[Any]:
    """The next live keys in id order: (id, wrapped key, key reference) rows."""
    query = select(BinaryRow.id, BinaryRow.wrapped_key, BinaryRow.key_ref).where(_LIVE_KEYS)
    if after is not None:
        query = query.where(BinaryRow.id > after)
    return list(session.execute(query.order_by(BinaryRow.id).limit(BATCH)))


def _rewrap(session: Session, provider: LocalKeyProvider, batch: list[Any]) -> tuple[int, int]:
    """Each key of `batch` wrapped under the current KEK and written back; (how many were
    written back, how many did not open)."""
    changes, not_opened = [], 0
    for binary_id, wrapped, key_ref in batch:
        try:
            new = provider.rewrap(WrappedKey(wrapped, key_ref), str(binary_id))
        except KeyUnwrapError:
            # One damaged key does not stop the rotation of every other.
            log.error("a data key did not open for its Binary", extra={"binary": str(binary_id)})
            not_opened += 1
            continue
        if new.key_ref == key_ref:
            continue  # wrapped under this KEK already (made while the rotation ran)
        changes.append(
            {
                "row_id": binary_id,
                "read_key": wrapped,
                "new_key": new.wrapped,
                "new_ref": new.key_ref,
            }
        )
    if not changes:
        return 0, not_opened
    written = core_connection(session).execute(_WRITE_BACK, changes).rowcount
    return written, not_opened


def _audit_entry(rotation: Rotation, outcome: Outcome = Outcome.SUCCESS) -> AuditEntry:
    return AuditEntry(
        kind=AuditKind.KEY_ROTATION,
        action=Action.UPDATE,
        outcome=outcome,
        actor=Actor.operator(),
        details={
            "kek-version": str(rotation.kek_version),
            "rewrapped": str(rotation.data_keys),
            "not-opened": str(rotation.not_opened),
            "totp-secrets": str(rotation.totp_secrets),
        },
    )
