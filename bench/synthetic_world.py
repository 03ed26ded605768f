"""The organisations of a synthetic national deployment (`quality.md`, "Scale to plan for"):
42 ICB areas, each with its ICB, three or four local authorities and seven providers, six
national providers working in every area, one data-sharing agreement in force per area
(and the terminated one it replaced), and one OAuth client per organisation.

The organisations do not scale: a 1% deployment still has every LA, ICB and provider, only
fewer children. Everything is derived from a seed, so a second run (growing the data) sees
the same world. ODS codes are synthetic (`LA001`, `ICB01`, `PRV001`), never real ones.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from exchange.codes import Purpose

AREAS: Final = 42
LAS: Final = 150
PROVIDERS_PER_AREA: Final = 7
NATIONAL_PROVIDERS: Final = 6
#: Every purpose an area's agreement covers (court orders go through other channels).
AGREEMENT_PURPOSES: Final = tuple(sorted(p.value for p in Purpose if p is not Purpose.COURT_ORDER))
#: What each kind of organisation's case or record system may do (as the example bootstrap
#: grants, plus reading its own audit trail).
SCOPES: Final = {
    "la": [
        "system/Patient.cruds",
        "system/Consent.cruds",
        "system/Task.cruds",
        "system/DocumentReference.crs",
        "system/Binary.cr",
        "system/Organization.rs",
        "system/Contract.rs",
        "system/AuditEvent.rs",
    ],
    "provider": [
        "system/Patient.rs",
        "system/Consent.rs",
        "system/Task.rus",
        "system/DocumentReference.crus",
        "system/Binary.cr",
        "system/Organization.rs",
        "system/AuditEvent.rs",
    ],
    "icb": [
        "system/Patient.crus",
        "system/Consent.crs",
        "system/Task.crus",
        "system/DocumentReference.crus",
        "system/Binary.cr",
        "system/Organization.rs",
        "system/Contract.rs",
        "system/AuditEvent.rs",
    ],
}


def seeded_uuid(rng: random.Random) -> uuid.UUID:
    """A random (version 4) UUID drawn from `rng`: reproducible from the seed."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


_VERSION_4_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_4_SET: Final = (0x4000 << 64) | (0x8000 << 48)


def seeded_uuid_text(rng: random.Random) -> str:
    """`str(seeded_uuid(rng))`, without the cost of a UUID object (millions of audit
    records need three each)."""
    digits = "%032x" % (rng.getrandbits(128) & _VERSION_4_CLEAR | _VERSION_4_SET)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


@dataclass(frozen=True, slots=True)
class Organisation:
    """A registered organisation and the client its system calls the API with."""

    id: uuid.UUID
    ods: str
    name: str
    role: str
    area: int
    commissioner: str | None = None
    break_glass: bool = False
    #: Relative size: how many children (an LA) or requests (a provider) it has.
    weight: float = 1.0

    @property
    def client_id(self) -> str:
        """The OAuth client of this organisation's system."""
        return f"bench-{self.ods.lower()}"

    @property
    def address(self) -> str:
        """The network address its system calls from (a private address per organisation)."""
        digest = hashlib.blake2b(self.ods.encode(), digest_size=2).digest()
        return f"10.{self.area}.{digest[0]}.{digest[1] or 1}"

    def reference(self) -> dict[str, Any]:
        """How the server writes a reference to it (`organisation_reference`)."""
        return {
            "identifier": {
                "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                "value": self.ods,
            },
            "display": self.name,
        }


@dataclass(frozen=True, slots=True)
class Agreement:
    """A data-sharing agreement: its row id (what `Contract/<id>` names) and parties."""

    id: uuid.UUID
    agreement_id: str
    title: str
    status: str
    start: date
    end: date | None
    parties: tuple[Organisation, ...]


@dataclass(slots=True)
class World:
    """Every organisation and agreement, and who works with whom."""

    icbs: list[Organisation] = field(default_factory=list)
    las: list[Organisation] = field(default_factory=list)
    providers: list[Organisation] = field(default_factory=list)
    agreements: list[Agreement] = field(default_factory=list)
    #: The agreement in force in each area (index: area).
    area_agreements: list[Agreement] = field(default_factory=list)
    #: The providers an area's LAs ask: its own and the national ones.
    area_providers: list[list[Organisation]] = field(default_factory=list)

    @property
    def organisations(self) -> list[Organisation]:
        """Every organisation, ICBs first."""
        return [*self.icbs, *self.las, *self.providers]

    def agreement_in(self, area: int) -> Agreement:
        """The agreement in force in an area."""
        return self.area_agreements[area]


def build_world(seed: int, since: date) -> World:
    """The organisations and agreements of the deployment (`since`: when its data begins)."""
    rng = random.Random(f"world:{seed}")
    world = World()
    for area in range(AREAS):
        world.icbs.append(
            Organisation(
                seeded_uuid(rng),
                f"ICB{area + 1:02d}",
                f"NHS Synthetic Area {area + 1} Integrated Care Board",
                "icb",
                area,
                break_glass=True,
            )
        )
    for number in range(LAS):
        area = number * AREAS // LAS
        world.las.append(
            Organisation(
                seeded_uuid(rng),
                f"LA{number + 1:03d}",
                f"Synthetic Borough Council {number + 1}",
                "la",
                area,
                weight=rng.lognormvariate(0, 0.6),
            )
        )
    national: list[Organisation] = []
    for number in range(AREAS * PROVIDERS_PER_AREA + NATIONAL_PROVIDERS):
        area = min(number // PROVIDERS_PER_AREA, AREAS - 1)
        is_national = number >= AREAS * PROVIDERS_PER_AREA
        provider = Organisation(
            seeded_uuid(rng),
            f"PRV{number + 1:03d}",
            f"Synthetic {'National Specialist' if is_national else 'Community'} Health "
            f"Services {number + 1}",
            "provider",
            area,
            commissioner=world.icbs[area].ods,
            weight=rng.lognormvariate(0, 0.5) * (0.3 if is_national else 1.0),
        )
        world.providers.append(provider)
        if is_national:
            national.append(provider)
    for area in range(AREAS):
        own = [p for p in world.providers[: AREAS * PROVIDERS_PER_AREA] if p.area == area]
        world.area_providers.append(own + national)
        parties = (
            world.icbs[area],
            *[la for la in world.las if la.area == area],
            *own,
            *national,
        )
        world.agreements.append(
            Agreement(
                seeded_uuid(rng),
                f"dsa-icb{area + 1:02d}-2014",
                f"SEND information sharing, area {area + 1}, 2014-{since.year}",
                "terminated",
                date(2014, 9, 1),
                since - timedelta(days=1),
                parties,
            )
        )
        current = Agreement(
            seeded_uuid(rng),
            f"dsa-icb{area + 1:02d}-{since.year}",
            f"SEND health advice data-sharing agreement, area {area + 1}, from {since.year}",
            "executed",
            since,
            None,
            parties,
        )
        world.agreements.append(current)
        world.area_agreements.append(current)
    return world


def world_rows(
    world: World, jwks: dict[str, Any], now: datetime
) -> dict[str, list[tuple[Any, ...]]]:
    """The registry rows (as `exchange bootstrap` stores them) of every organisation,
    agreement and client; every client is keyed with `jwks`."""
    rows: dict[str, list[tuple[Any, ...]]] = {
        "organisation": [],
        "agreement": [],
        "agreement_party": [],
        "agreement_purpose": [],
        "client": [],
    }
    for organisation in world.organisations:
        rows["organisation"].append(
            (
                organisation.id,
                organisation.ods,
                organisation.name,
                organisation.role,
                organisation.commissioner,
                organisation.break_glass,
                1,
                now,
                now,
            )
        )
        rows["client"].append(
            (
                organisation.client_id,
                organisation.id,
                SCOPES[organisation.role],
                jwks,
                None,
                True,
                now,
                now,
            )
        )
    for agreement in world.agreements:
        rows["agreement"].append(
            (
                agreement.id,
                agreement.agreement_id,
                agreement.title,
                agreement.status,
                agreement.start,
                agreement.end,
                "operator@bench-generator",
                1,
                now,
                now,
            )
        )
        rows["agreement_party"] += [
            (agreement.id, party.id, position) for position, party in enumerate(agreement.parties)
        ]
        rows["agreement_purpose"] += [(agreement.id, purpose) for purpose in AGREEMENT_PURPOSES]
    return rows
