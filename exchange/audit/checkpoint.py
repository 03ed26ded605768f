"""Signed checkpoints of the chain head (`audit.md`, Checkpoints).

A checkpoint signs `{"created", "hash", "sequence"}` (canonical JSON) with the key
provider's signing key (local: Ed25519 in the keyring). Someone who can rewrite the
database but not the key cannot produce a history that matches the checkpoints.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from exchange.audit.chain import canonical_json, chain_head
from exchange.audit.models import AuditCheckpoint, AuditRecord
from exchange.crypto.keyring import Keyring


def _signed_bytes(sequence: int, hash_: str, created: datetime) -> bytes:
    statement = {
        "created": created.isoformat(timespec="microseconds"),
        "hash": hash_,
        "sequence": str(sequence),
    }
    return canonical_json(statement).encode("utf-8")


def create_checkpoint(session: Session, keyring: Keyring, now: datetime) -> AuditCheckpoint | None:
    """Sign the current head; None if the chain is empty."""
    head = chain_head(session)
    if head.sequence == 0:
        return None
    signature = keyring.signing_key.sign(_signed_bytes(head.sequence, head.hash, now))
    checkpoint = AuditCheckpoint(
        sequence=head.sequence,
        hash=head.hash,
        created=now,
        key_id=keyring.signing_key_id,
        algorithm="Ed25519",
        signature=base64.b64encode(signature).decode("ascii"),
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    """The newest checkpoint, if any."""
    return session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)
    ).first()


@dataclass(frozen=True, slots=True)
class CheckpointProblem:
    """A checkpoint that does not hold: bad signature, or the chain no longer matches it."""

    checkpoint_id: int
    sequence: int
    problem: str


def verify_checkpoints(session: Session, public_key: Ed25519PublicKey) -> list[CheckpointProblem]:
    """Check every checkpoint's signature and that the chain still has its hash."""
    problems: list[CheckpointProblem] = []
    for checkpoint in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)):
        try:
            public_key.verify(
                base64.b64decode(checkpoint.signature),
                _signed_bytes(checkpoint.sequence, checkpoint.hash, checkpoint.created),
            )
        except (InvalidSignature, ValueError):
            problems.append(
                CheckpointProblem(checkpoint.id, checkpoint.sequence, "its signature is not valid")
            )
            continue
        stored = session.scalar(
            select(AuditRecord.hash).where(AuditRecord.sequence == checkpoint.sequence)
        )
        if stored != checkpoint.hash:
            problems.append(
                CheckpointProblem(
                    checkpoint.id, checkpoint.sequence, "the chain no longer has the hash it signed"
                )
            )
    return problems
