"""Bulk loading with PostgreSQL `COPY` (psycopg's `cursor.copy`): the generator's rows go
straight into the service's tables, parents before children so every foreign key holds
as each row arrives."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import psycopg
from psycopg import sql
from sqlalchemy import JSON

from exchange.schema import metadata

#: Every table the generator fills, in foreign-key order, with its columns in the order
#: the generator's row tuples give them.
COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "organisation": (
        "id", "ods", "name", "role", "commissioner_ods", "break_glass", "version", "created",
        "updated",
    ),
    "agreement": (
        "id", "agreement_id", "title", "status", "start", "end", "registered_by", "version",
        "created", "updated",
    ),
    "agreement_party": ("agreement_id", "organisation_id", "position"),
    "agreement_purpose": ("agreement_id", "purpose"),
    "client": (
        "client_id", "organisation_id", "scopes", "jwks", "jwks_uri", "enabled", "created",
        "updated",
    ),
    "access_token": (
        "token_hash", "jti", "client_id", "scope", "assertion_jti", "issued_at", "expires_at",
        "revoked_at",
    ),
    "patient": ("id", "nhs_number", "birth_date"),
    "patient_registration": (
        "id", "patient_id", "organisation_id", "first", "version", "last_updated", "resource",
    ),
    "patient_access": ("patient_id", "organisation_id", "relationship", "since"),
    "consent": (
        "id", "patient_id", "organisation_id", "status", "date_time", "maker_valid",
        "contested", "version", "last_updated", "resource",
    ),
    "task": (
        "id", "patient_id", "requester_id", "owner_id", "task_type", "reason", "status",
        "authored_on", "received_on", "due_date", "completed_on", "closed_on",
        "status_reason", "forwarded", "clock_exception", "version", "last_updated",
        "resource",
    ),
    "task_party": ("task_id", "organisation_id", "role"),
    "binary": (
        "id", "blob_name", "content_type", "size", "sha256", "sha1", "wrapped_key", "key_ref",
        "uploader_id", "created", "document_id", "destroyed",
    ),
    "document_reference": (
        "id", "patient_id", "custodian_id", "task_id", "binary_id", "doc_type", "status",
        "date", "version", "last_updated", "resource",
    ),
    "resource_version": ("resource_type", "resource_id", "version", "last_updated", "resource"),
    "audit_event": (
        "id", "event_id", "recorded", "sequence", "previous_hash", "hash", "payload", "kind",
        "action", "outcome", "agent_client_id", "agent_user", "agent_org", "custodian_org",
        "patient_id", "purpose", "break_glass", "request_id", "review_reason",
    ),
    "audit_event_entity": ("audit_id", "reference"),
}  # fmt: skip


def check_columns() -> None:
    """Fail loudly if a model gained, lost or renamed a column the generator fills: the
    generated rows must stay what the service stores."""
    for table, columns in COLUMNS.items():
        modelled = {column.name for column in metadata.tables[table].columns}
        if modelled != set(columns):
            raise RuntimeError(
                f"bench generator is out of date for table {table}: "
                f"the model has {sorted(modelled ^ set(columns))} differently"
            )


def _json_positions(table: str) -> tuple[int, ...]:
    model = metadata.tables[table]
    return tuple(
        position
        for position, name in enumerate(COLUMNS[table])
        if isinstance(model.columns[name].type, JSON)
    )


JSON_POSITIONS: Final = {table: _json_positions(table) for table in COLUMNS}


def copy_rows(
    connection: psycopg.Connection[Any], table: str, rows: Iterable[tuple[Any, ...]]
) -> int:
    """COPY `rows` into `table` (JSON columns given as Python values); how many."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS[table]))
    )
    positions = JSON_POSITIONS[table]
    count = 0
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            if positions:
                values = list(row)
                for position in positions:
                    if values[position] is not None:
                        values[position] = orjson.dumps(values[position]).decode()
                row = tuple(values)
            copy.write_row(row)
            count += 1
    return count


@dataclass(slots=True)
class Rows:
    """Rows by table, waiting to be copied (in foreign-key order, by `copy_rows`)."""

    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        """Queue a row for `table`."""
        self.tables.setdefault(table, []).append(row)

    def count(self, table: str) -> int:
        """How many rows are queued for `table`."""
        return len(self.tables.get(table, ()))

    def clear(self) -> None:
        """Forget the queued rows (they were copied)."""
        self.tables.clear()
