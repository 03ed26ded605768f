"""The audit trail of the synthetic deployment: an entry for every interaction a child's
story has (`synthetic_records`), thinned or topped up to the audit scale with what fills
most of a real trail (token grants, work-list searches, searches by NHS number, repeated
reads), then sealed into a hash chain that `exchange audit verify` accepts.

Each record is what `audit.service.record` stores for its entry: the FHIR AuditEvent of
`audit.events.to_fhir` as canonical JSON (sorted keys, no whitespace), the search columns,
the entity index, and, as the sealer would have given it, its sequence and hash
(`audit.chain.chain_hash`). Records are sealed in the order they happened within each batch
the generator writes; across batches the chain runs on in the order written.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import orjson

from bench.synthetic_world import SCOPES, Organisation, seeded_uuid_text
from exchange.audit.chain import chain_hash
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Entity, Outcome, to_fhir
from exchange.codes import Purpose

Row = tuple[Any, ...]
#: An entry not yet made: when it happens, and how to make it. Only the entries the audit
#: scale keeps are made, so the decision behind a read is taken only for those.
Pending = tuple[datetime, Callable[[], AuditEntry]]
DEFAULT_PURPOSE: Final = Purpose.EHCNA_ADVICE.value
NHS_NUMBER_QUERY: Final = "patient.identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C"
ODS_QUERY: Final = "owner=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fods-organization-code%7C"


@dataclass(frozen=True, slots=True)
class Background:
    """What a child's trail is topped up with: who takes part, and which records."""

    organisations: tuple[Organisation, ...]
    la: Organisation
    nhs_number: str
    patient_id: uuid.UUID
    task_ids: tuple[uuid.UUID, ...]
    first: datetime
    last: datetime


class AuditEntries:
    """Collects a child's entries, keeps as many as the audit scale asks, and turns the
    kept ones into sealed rows."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(f"{seed}:audit")
        self.pending: list[Pending] = []
        self.kept: list[tuple[datetime, AuditEntry]] = []

    # --- entries ----------------------------------------------------------------------------

    def entry(
        self,
        organisation: Organisation,
        kind: AuditKind,
        entities: tuple[Entity, ...] = (),
        patient_id: uuid.UUID | None = None,
        *,
        custodian: str | None = None,
        purpose: str | None = None,
        outcome: Outcome = Outcome.SUCCESS,
        outcome_desc: str | None = None,
        query: str | None = None,
    ) -> AuditEntry:
        """The entry an API request of `organisation`'s system leaves (`Caller.audit_entry`)."""
        actor = Actor(
            client_id=organisation.client_id,
            organisation=organisation.ods,
            address=organisation.address,
            purpose=purpose or DEFAULT_PURPOSE,
            token_jti=seeded_uuid_text(self.rng),
        )
        return AuditEntry(
            kind=kind,
            action=kind.action,
            outcome=outcome,
            actor=actor,
            outcome_desc=outcome_desc,
            entities=entities,
            patient_id=patient_id,
            custodian=custodian,
            query=query,
            request_id=seeded_uuid_text(self.rng),
        )

    def token(self, organisation: Organisation) -> AuditEntry:
        """A granted token request (`auth.clients.record_token_success`)."""
        return AuditEntry(
            kind=AuditKind.TOKEN,
            action=Action.EXECUTE,
            outcome=Outcome.SUCCESS,
            actor=Actor(
                client_id=organisation.client_id,
                organisation=organisation.ods,
                address=organisation.address,
                token_jti=seeded_uuid_text(self.rng),
            ),
            request_id=seeded_uuid_text(self.rng),
            details={
                "endpoint": "token",
                "scope": " ".join(SCOPES[organisation.role]),
                "assertion-jti": seeded_uuid_text(self.rng),
            },
        )

    def api(
        self,
        at: datetime,
        organisation: Organisation,
        kind: AuditKind,
        entities: tuple[Entity, ...] = (),
        patient_id: uuid.UUID | None = None,
        **fields: Any,
    ) -> None:
        """An API interaction at `at`, its entry made only if kept."""
        self.later(
            at, functools.partial(self.entry, organisation, kind, entities, patient_id, **fields)
        )

    def later(self, at: datetime, make: Callable[[], AuditEntry]) -> None:
        """An entry at `at`, made by `make` only if kept."""
        self.pending.append((at, make))

    def keep(self, wanted: float, background: Background) -> None:
        """Keep `wanted` of the child's entries (on average): a random share of its own
        if it has more, else all of them and the rest from `background`."""
        rng = self.rng
        count = int(wanted) + (rng.random() < wanted - int(wanted))
        story = self.pending
        self.pending = []
        if count < len(story):
            story = rng.sample(story, count)
        self.kept += [(at, make()) for at, make in story]
        for _ in range(count - len(story)):
            self.kept.append(self._background(background))

    def _background(self, background: Background) -> tuple[datetime, AuditEntry]:
        rng = self.rng
        span = (background.last - background.first).total_seconds()
        at = background.first + timedelta(seconds=rng.random() * max(span, 1.0))
        organisation = rng.choice(background.organisations)
        roll = rng.random()
        if roll < 0.4:
            return at, self.token(organisation)
        if roll < 0.65 and organisation.role != "la":
            query = f"{ODS_QUERY}{organisation.ods}&status=requested"
            return at, self.entry(organisation, AuditKind.SEARCH, query=query)
        if roll < 0.85 or not background.task_ids:
            query = f"{NHS_NUMBER_QUERY}{background.nhs_number}"
            return at, self.entry(background.la, AuditKind.SEARCH, query=query)
        task_id = rng.choice(background.task_ids)
        entities = (
            Entity(f"Task/{task_id}"),
            Entity(f"Patient/{background.patient_id}", "patient"),
        )
        return at, self.entry(organisation, AuditKind.READ, entities, background.patient_id)

    # --- sealed rows ------------------------------------------------------------------------

    def take(self) -> list[tuple[datetime, AuditEntry]]:
        """The kept entries, in the order they happened; forgets them."""
        kept = sorted(self.kept, key=lambda item: item[0])
        self.kept = []
        return kept


@dataclass(slots=True)
class Chain:
    """The chain head the next sealed record links to."""

    sequence: int
    hash: str

    def seal(
        self, entries: Iterable[tuple[datetime, AuditEntry]], first_id: int, rng: random.Random
    ) -> tuple[list[Row], list[Row]]:
        """The `audit_event` and `audit_event_entity` rows of `entries`, sealed in order,
        with ids from `first_id`."""
        events: list[Row] = []
        references: list[Row] = []
        dumps, sort_keys = orjson.dumps, orjson.OPT_SORT_KEYS
        for offset, (recorded, entry) in enumerate(entries):
            audit_id = first_id + offset
            event_id = seeded_uuid_text(rng)
            payload = dumps(to_fhir(entry, event_id, recorded), option=sort_keys).decode()
            self.sequence += 1
            previous, self.hash = self.hash, chain_hash(self.hash, self.sequence, payload)
            actor = entry.actor
            events.append(
                (audit_id, event_id, recorded, self.sequence, previous, self.hash, payload,
                 entry.kind.value, entry.action.value, entry.outcome.value, actor.client_id,
                 actor.user if actor.client_id is None else None, actor.organisation,
                 entry.custodian, entry.patient_id, actor.purpose, actor.break_glass,
                 entry.request_id, None),
            )  # fmt: skip
            references += [
                (audit_id, reference)
                for reference in dict.fromkeys(e.reference[:160] for e in entry.entities)
            ]
        return events, references
