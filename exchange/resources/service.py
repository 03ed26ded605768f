"""Storing and reading resource versions, the same way for every resource type.

A resource's current version lives in its own table (with the columns its searches need);
every version, the current one included, is also kept here for vread and `_history`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from exchange.resources.models import ResourceVersion


def instant(value: datetime) -> str:
    """A FHIR instant (UTC, milliseconds, `Z`)."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp(resource: dict[str, Any], resource_id: uuid.UUID, version: int, now: datetime) -> dict[str, Any]:
    """The resource with its server-assigned id, versionId and lastUpdated (other `meta`
    such as tags and profiles is kept)."""
    stamped = dict(resource)
    stamped["id"] = str(resource_id)
    meta = dict(stamped.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant(now)
    stamped["meta"] = meta
    return stamped


def keep_version(session: Session, resource: dict[str, Any], now: datetime) -> None:
    """Add a stamped resource to the version history."""
    session.add(
        ResourceVersion(
            resource_type=resource["resourceType"],
            resource_id=uuid.UUID(resource["id"]),
            version=int(resource["meta"]["versionId"]),
            last_updated=now,
            resource=resource,
        )
    )


def read_version(session: Session, resource_type: str, resource_id: uuid.UUID, version: int | None) -> dict[str, Any] | None:
    """One version of a resource, or None (also when `version` is None: no such version)."""
    if version is None:
        return None
    row = session.get(ResourceVersion, (resource_type, resource_id, version))
    return row.resource if row is not None else None


def versions(session: Session, resource_type: str, resource_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every version of a resource, newest first."""
    rows = session.scalars(
        select(ResourceVersion)
        .where(ResourceVersion.resource_type == resource_type, ResourceVersion.resource_id == resource_id)
        .order_by(ResourceVersion.version.desc())
    )
    return [row.resource for row in rows]
