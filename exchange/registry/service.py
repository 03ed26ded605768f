"""Registry use cases: upserts that report what changed, and look-ups.

Each upsert compares the stored entry with the spec and touches nothing when they agree,
which is what makes `exchange bootstrap` idempotent ("no changes" on a second run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from exchange.agreements.models import Agreement, AgreementParty, AgreementPurpose, Organisation
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.service import record
from exchange.auth.models import Client
from exchange.clock import Clock
from exchange.registry.specs import (
    AgreementSpec,
    BootstrapSpec,
    ClientSpec,
    OrganisationSpec,
    UserSpec,
    parse_bootstrap,
)
from exchange.users.models import ConsoleUser
from exchange.users.passwords import hash_password, verify_password
from exchange.users.service import end_sessions


class RegistryError(LookupError):
    """A registry entry the caller named does not exist, or cannot change as asked."""


class RegistryRefused(RegistryError):
    """A change the registry will not make (an administrator disabling their own account,
    which would leave nobody able to undo it from the console)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One registry entry that was created or updated, and which fields changed."""

    kind: str
    key: str
    created: bool
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.created:
            return f"{self.kind} {self.key}: created"
        return f"{self.kind} {self.key}: updated ({', '.join(self.fields)})"


def known_roles(session: Session) -> dict[str, str]:
    """Every registered ODS code with its role."""
    rows = session.execute(select(Organisation.ods, Organisation.role)).all()
    return {row.ods: row.role for row in rows}


def organisation_by_ods(session: Session, ods: str) -> Organisation:
    """The organisation with this ODS code; `RegistryError` if there is none."""
    organisation = session.scalar(select(Organisation).where(Organisation.ods == ods))
    if organisation is None:
        raise RegistryError(f"no organisation has ODS code {ods!r}")
    return organisation


def _apply_fields(entry: object, wanted: dict[str, object]) -> tuple[str, ...]:
    changed = tuple(name for name, value in wanted.items() if getattr(entry, name) != value)
    for name in changed:
        setattr(entry, name, wanted[name])
    return changed


def upsert_organisation(session: Session, spec: OrganisationSpec, now: datetime) -> Change | None:
    """Create or update an organisation."""
    wanted: dict[str, object] = {
        "name": spec.name,
        "role": spec.role.value,
        "commissioner_ods": spec.commissioner,
        "break_glass": spec.break_glass,
    }
    existing = session.scalar(select(Organisation).where(Organisation.ods == spec.ods))
    if existing is None:
        session.add(Organisation(ods=spec.ods, created=now, updated=now, version=1, **wanted))
        session.flush()
        return Change("organisation", spec.ods, created=True)
    changed = _apply_fields(existing, wanted)
    if not changed:
        return None
    existing.version += 1
    existing.updated = now
    return Change("organisation", spec.ods, created=False, fields=changed)


def upsert_agreement(
    session: Session, spec: AgreementSpec, now: datetime, registered_by: str
) -> Change | None:
    """Create or update a data-sharing agreement with its parties and purposes."""
    wanted: dict[str, object] = {
        "title": spec.title,
        "status": spec.status,
        "start": spec.start,
        "end": spec.end,
    }
    agreement = session.scalar(select(Agreement).where(Agreement.agreement_id == spec.agreement_id))
    created = agreement is None
    if agreement is None:
        agreement = Agreement(
            agreement_id=spec.agreement_id,
            registered_by=registered_by,
            created=now,
            updated=now,
            version=1,
            **wanted,
        )
        session.add(agreement)
        changed: tuple[str, ...] = ()
    else:
        changed = _apply_fields(agreement, wanted)
    if list(spec.parties) != agreement.party_ods:
        agreement.parties = [
            AgreementParty(organisation=organisation_by_ods(session, ods), position=position)
            for position, ods in enumerate(spec.parties)
        ]
        changed += ("parties",)
    if sorted(p.value for p in spec.purposes) != agreement.purpose_codes:
        agreement.purposes = [AgreementPurpose(purpose=p.value) for p in sorted(spec.purposes)]
        changed += ("purposes",)
    session.flush()
    if created:
        return Change("agreement", spec.agreement_id, created=True)
    if not changed:
        return None
    agreement.version += 1
    agreement.updated = now
    return Change("agreement", spec.agreement_id, created=False, fields=changed)


def upsert_client(session: Session, spec: ClientSpec, now: datetime) -> Change | None:
    """Create or update an OAuth client."""
    organisation = organisation_by_ods(session, spec.organisation)
    wanted: dict[str, object] = {
        "organisation_id": organisation.id,
        "scopes": list(spec.scopes),
        "jwks": spec.jwks,
        "jwks_uri": spec.jwks_uri,
        "enabled": spec.enabled,
    }
    client = session.get(Client, spec.client_id)
    if client is None:
        session.add(Client(client_id=spec.client_id, created=now, updated=now, **wanted))
        session.flush()
        return Change("client", spec.client_id, created=True)
    changed = _apply_fields(client, wanted)
    if not changed:
        return None
    client.updated = now
    return Change("client", spec.client_id, created=False, fields=changed)


def upsert_user(session: Session, spec: UserSpec, now: datetime) -> Change | None:
    """Create or update a console user. A plain password is hashed (argon2id) and never kept;
    an unchanged password is recognised by verifying it against the stored hash."""
    organisation = organisation_by_ods(session, spec.organisation)
    wanted: dict[str, object] = {
        "organisation_id": organisation.id,
        "roles": list(spec.roles),
        "enabled": spec.enabled,
    }
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.username == spec.username))
    if user is None:
        password_hash = spec.password_hash or hash_password(spec.password or "")
        session.add(
            ConsoleUser(
                username=spec.username,
                password_hash=password_hash,
                must_change_password=spec.password is not None,
                created=now,
                updated=now,
                **wanted,
            )
        )
        session.flush()
        return Change("user", spec.username, created=True)
    changed = _apply_fields(user, wanted)
    if spec.password_hash is not None and user.password_hash != spec.password_hash:
        user.password_hash = spec.password_hash
        changed += ("password",)
    elif spec.password is not None and not verify_password(user.password_hash, spec.password):
        user.password_hash = hash_password(spec.password)
        user.must_change_password = True
        changed += ("password",)
    if not changed:
        return None
    user.updated = now
    return Change("user", spec.username, created=False, fields=changed)


def register_entry(
    session: Session, section: str, entry: dict[str, Any], clock: Clock, actor: Actor
) -> list[Change]:
    """Validate and upsert one registry entry (`section` as in a bootstrap file: an
    organisation, agreement, client or user), as the CLI and the console's admin pages
    do; `BootstrapError` names every problem."""
    spec = parse_bootstrap({section: [entry]}, known_roles(session))
    return apply_bootstrap(session, spec, clock, actor)


def apply_bootstrap(
    session: Session,
    spec: BootstrapSpec,
    clock: Clock,
    actor: Actor,
    kind: AuditKind = AuditKind.REGISTRY_CHANGE,
) -> list[Change]:
    """Upsert registry entries (a bootstrap file, or one CLI entry) in the caller's
    transaction, audited as one event."""
    now = clock.now()
    registered_by = actor.user or actor.client_id or "operator"
    changes: list[Change | None] = []
    changes += [upsert_organisation(session, o, now) for o in spec.organisations]
    changes += [upsert_agreement(session, a, now, registered_by) for a in spec.agreements]
    changes += [upsert_client(session, c, now) for c in spec.clients]
    changes += [upsert_user(session, u, now) for u in spec.users]
    applied = [change for change in changes if change is not None]
    if applied:
        record_registry_change(session, clock, actor, applied, kind)
    return applied


def record_registry_change(
    session: Session,
    clock: Clock,
    actor: Actor,
    changes: Sequence[Change],
    kind: AuditKind = AuditKind.REGISTRY_CHANGE,
) -> None:
    """Audit registry changes (what changed, never secrets or key material)."""
    record(
        session,
        AuditEntry(
            kind=kind,
            action=Action.UPDATE,
            outcome=Outcome.SUCCESS,
            actor=actor,
            details={"changes": "; ".join(str(change) for change in changes)},
        ),
        clock,
    )


def set_client_enabled(
    session: Session, client_id: str, enabled: bool, clock: Clock, actor: Actor
) -> Change | None:
    """Enable or disable a client; a disabled client gets `invalid_client` at once."""
    client = session.get(Client, client_id)
    if client is None:
        raise RegistryError(f"no client has id {client_id!r}")
    if client.enabled == enabled:
        return None
    client.enabled = enabled
    client.updated = clock.now()
    change = Change("client", client_id, created=False, fields=("enabled",))
    record_registry_change(session, clock, actor, [change])
    return change


def set_agreement_status(
    session: Session, agreement_id: str, status: str, clock: Clock, actor: Actor
) -> Change | None:
    """Terminate or revoke an agreement; only `executed` agreements count for access."""
    agreement = session.scalar(select(Agreement).where(Agreement.agreement_id == agreement_id))
    if agreement is None:
        raise RegistryError(f"no agreement has id {agreement_id!r}")
    if agreement.status == status:
        return None
    agreement.status = status
    agreement.version += 1
    agreement.updated = clock.now()
    change = Change("agreement", agreement_id, created=False, fields=("status",))
    record_registry_change(session, clock, actor, [change])
    return change


def set_user_password(
    session: Session, username: str, password: str, clock: Clock, actor: Actor
) -> Change:
    """Reset a console user's password; they must change it (and set up TOTP again) at
    next login."""
    user = _user(session, username)
    user.password_hash = hash_password(password)
    user.must_change_password = True
    user.totp_secret = None
    user.totp_last_step = None
    user.failed_logins = 0
    user.locked_until = None
    user.updated = clock.now()
    end_sessions(session, user.id, user.updated)
    change = Change("user", username, created=False, fields=("password",))
    record_registry_change(session, clock, actor, [change])
    return change


def set_user_enabled(
    session: Session, username: str, enabled: bool, clock: Clock, actor: Actor
) -> Change | None:
    """Enable or disable a console user. A person at the console cannot disable their own
    account (another administrator, or the operator, can)."""
    if not enabled and actor.user == username:
        raise RegistryRefused("you cannot disable your own account")
    user = _user(session, username)
    if user.enabled == enabled:
        return None
    user.enabled = enabled
    user.updated = clock.now()
    if not enabled:
        end_sessions(session, user.id, user.updated)
    change = Change("user", username, created=False, fields=("enabled",))
    record_registry_change(session, clock, actor, [change])
    return change


def reset_user_totp(session: Session, username: str, clock: Clock, actor: Actor) -> Change:
    """Forget a console user's TOTP secret (a lost phone): they set up a new one at next
    sign-in, after their password; their sessions end now."""
    user = _user(session, username)
    user.totp_secret = None
    user.totp_last_step = None
    user.updated = clock.now()
    end_sessions(session, user.id, user.updated)
    change = Change("user", username, created=False, fields=("totp",))
    record_registry_change(session, clock, actor, [change])
    return change


def _user(session: Session, username: str) -> ConsoleUser:
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
    if user is None:
        raise RegistryError(f"no console user is called {username!r}")
    return user


def list_organisations(session: Session) -> list[Organisation]:
    """Every organisation, by ODS code."""
    return list(session.scalars(select(Organisation).order_by(Organisation.ods)))


def list_clients(session: Session) -> list[Client]:
    """Every client, by id."""
    return list(session.scalars(select(Client).order_by(Client.client_id)))


def list_users(session: Session) -> list[ConsoleUser]:
    """Every console user, by username (with their organisation)."""
    return list(session.scalars(select(ConsoleUser).order_by(ConsoleUser.username)))


def list_agreements(session: Session) -> list[Agreement]:
    """Every agreement, by operator id."""
    return list(session.scalars(select(Agreement).order_by(Agreement.agreement_id)))
