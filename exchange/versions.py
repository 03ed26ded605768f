"""Versioned FHIR resources: every version of every resource this service stores, kept the
same way for every resource type (vread, `_history`).

A resource's current version lives in its own table (with the columns its searches need);
every version, the current one included, is also kept here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Integer, String, Uuid, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from exchange.codes import PROFILE_ADVICE_REQUEST, PROFILE_CONSENT, PROFILE_HEALTH_ADVICE
from exchange.db import Base, JsonDocument, UTCDateTime, Write, core_connection, row_insert
from exchange.errors import VersionMismatch


class ResourceVersion(Base):
    """One version of one resource, as it was served."""

    __tablename__ = "resource_version"

    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime)
    resource: Mapped[dict[str, Any]] = mapped_column(JsonDocument)


def instant(value: datetime) -> str:
    """A FHIR instant (UTC, milliseconds, `Z`)."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: The profile each stored type conforms to, claimed in `meta.profile` of what is served.
PROFILES: Final = {
    "Consent": PROFILE_CONSENT,
    "Task": PROFILE_ADVICE_REQUEST,
    "DocumentReference": PROFILE_HEALTH_ADVICE,
}


def stamp(
    resource: dict[str, Any], resource_id: uuid.UUID, version: int, now: datetime
) -> dict[str, Any]:
    """The resource with its server-assigned id and `meta` (versionId, lastUpdated, the
    profile it was validated against; tags are kept), its elements in FHIR's order:
    `resourceType`, `id`, `meta` first."""
    meta = {
        key: value
        for key, value in (resource.get("meta") or {}).items()
        if key not in ("versionId", "lastUpdated", "profile")
    }
    meta = {"versionId": str(version), "lastUpdated": instant(now), **meta}
    profile = PROFILES.get(str(resource.get("resourceType")))
    if profile is not None:
        meta["profile"] = [profile]
    rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
    return {"resourceType": resource["resourceType"], "id": str(resource_id), "meta": meta, **rest}


_INSERT_VERSION: Final = row_insert(ResourceVersion)


def keep_version(session: Session, resource: dict[str, Any], now: datetime) -> None:
    """Add a stamped resource to the version history, as it is now: one Core insert in the
    session's transaction (the unit of work's flush cost more: bench/profiles)."""
    version_write(resource, now).run(core_connection(session))


def version_write(resource: dict[str, Any], now: datetime) -> Write:
    """`keep_version` as one of a use case's writes (`db.write_together`)."""
    return Write(
        _INSERT_VERSION,
        {
            "resource_type": resource["resourceType"],
            "resource_id": uuid.UUID(resource["id"]),
            "version": int(resource["meta"]["versionId"]),
            "last_updated": now,
            "resource": resource,
        },
    )


def read_version(
    session: Session, resource_type: str, resource_id: uuid.UUID, version: int | None
) -> dict[str, Any] | None:
    """One version of a resource, or None (also when `version` is None: no such version)."""
    if version is None:
        return None
    row = session.get(ResourceVersion, (resource_type, resource_id, version))
    return row.resource if row is not None else None


def version_as_of(
    session: Session, resource_type: str, resource_id: uuid.UUID, at: datetime
) -> dict[str, Any] | None:
    """The version of a resource that was current at `at`: the latest stored by then, or
    None if none was yet."""
    row = session.scalars(
        select(ResourceVersion)
        .where(
            ResourceVersion.resource_type == resource_type,
            ResourceVersion.resource_id == resource_id,
            ResourceVersion.last_updated <= at,
        )
        .order_by(ResourceVersion.version.desc())
        .limit(1)
    ).first()
    return row.resource if row is not None else None


def all_versions(
    session: Session, resource_type: str, resource_id: uuid.UUID
) -> list[dict[str, Any]]:
    """Every version of a resource, newest first."""
    rows = session.scalars(
        select(ResourceVersion)
        .where(
            ResourceVersion.resource_type == resource_type,
            ResourceVersion.resource_id == resource_id,
        )
        .order_by(ResourceVersion.version.desc())
    )
    return [row.resource for row in rows]


def check_version(current: int, wanted: str | None) -> None:
    """`If-Match`: the client names the version it changes; another one means it changed
    since they read it (VersionMismatch, 412). None: the client did not say."""
    if wanted is None:
        return
    named = wanted.strip().removeprefix("W/").strip('"')
    if named != str(current):
        raise VersionMismatch(
            f"If-Match names version {named}, but the current version is {current}"
        )
