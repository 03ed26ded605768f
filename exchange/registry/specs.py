"""Validated registry entries, as the bootstrap file and the CLI give them.

`parse_bootstrap` checks a whole file and returns every problem at once, naming the entry
and field, so an operator fixes the file in one go and nothing is applied until it is valid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    pass

from exchange.agreements.ods import ODS_CODE
from exchange.auth.jwks import check_jwks, check_jwks_uri
from exchange.auth.scopes import ScopeError, parse_scope
from exchange.codes import AGREEMENT_STATUSES, OrganisationRole, Purpose
from exchange.users.passwords import MIN_PASSWORD_LENGTH as MIN_PASSWORD_LENGTH
from exchange.users.passwords import is_argon2id_hash

IDENTIFIER: Final = re.compile(r"^[A-Za-z0-9._@-]{1,128}$")
CONSOLE_ROLES: Final = ("ig-lead", "dco", "admin")


@dataclass(frozen=True, slots=True)
class OrganisationSpec:
    """An organisation to register."""

    ods: str
    name: str
    role: OrganisationRole
    commissioner: str | None = None
    break_glass: bool = False


@dataclass(frozen=True, slots=True)
class AgreementSpec:
    """A data-sharing agreement to register."""

    agreement_id: str
    title: str
    parties: tuple[str, ...]
    purposes: tuple[Purpose, ...]
    start: date
    end: date | None = None
    status: str = "executed"


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """An OAuth client to register, with inline JWKS or a `jwks_uri`."""

    client_id: str
    organisation: str
    scopes: tuple[str, ...]
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class UserSpec:
    """A console user to register, with a password (hashed on apply) or an argon2id hash."""

    username: str
    organisation: str
    roles: tuple[str, ...]
    password: str | None = field(default=None, repr=False)
    password_hash: str | None = field(default=None, repr=False)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class BootstrapSpec:
    """A whole, valid bootstrap file."""

    organisations: tuple[OrganisationSpec, ...] = ()
    agreements: tuple[AgreementSpec, ...] = ()
    clients: tuple[ClientSpec, ...] = ()
    users: tuple[UserSpec, ...] = ()


class BootstrapError(ValueError):
    """A bootstrap file (or CLI entry) is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Problems:
    """Collects problems under an entry label such as `clients[1] (prv01-epr)`."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def _entry_label(section: str, index: int, entry: Mapping[str, Any], key: str) -> str:
    name = entry.get(key)
    return f"{section}[{index}] ({name})" if isinstance(name, str) else f"{section}[{index}]"


def _check_keys(
    problems: _Problems, where: str, entry: Mapping[str, Any], allowed: set[str], required: set[str]
) -> None:
    for key in sorted(set(entry) - allowed):
        problems.add(where, f"unknown field {key!r}")
    for key in sorted(required - set(entry)):
        problems.add(where, f"field {key!r} is required")


def _string(
    problems: _Problems,
    where: str,
    entry: Mapping[str, Any],
    key: str,
    pattern: re.Pattern[str] | None = None,
) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add(where, f"{key} must be a non-empty string")
        return None
    if pattern is not None and not pattern.fullmatch(value):
        problems.add(where, f"{key} {value!r} is not valid")
        return None
    return value


def _bool(
    problems: _Problems, where: str, entry: Mapping[str, Any], key: str, default: bool
) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        problems.add(where, f"{key} must be true or false")
        return default
    return value


def _string_list(problems: _Problems, where: str, entry: Mapping[str, Any], key: str) -> list[str]:
    value = entry.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.add(where, f"{key} must be a non-empty list of strings")
        return []
    if len(set(value)) != len(value):
        problems.add(where, f"{key} lists an item twice")
    return value


def _date(problems: _Problems, where: str, entry: Mapping[str, Any], key: str) -> date | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, date):
        return value  # YAML parses bare dates itself
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        problems.add(where, f"{key} {value!r} is not a date (YYYY-MM-DD)")
        return None


def parse_bootstrap(document: Any, known_ods: Mapping[str, str] | None = None) -> BootstrapSpec:
    """Validate a parsed bootstrap document. `known_ods` maps already registered ODS codes to
    their roles, so a file may refer to organisations registered earlier."""
    problems = _Problems()
    if not isinstance(document, dict):
        raise BootstrapError(["the file must hold a JSON or YAML object"])
    for key in sorted(set(document) - {"organisations", "agreements", "clients", "users"}):
        problems.add("file", f"unknown section {key!r}")
    roles: dict[str, str] = dict(known_ods or {})
    organisations = _parse_organisations(document.get("organisations", []), problems, roles)
    agreements = _parse_agreements(document.get("agreements", []), problems, roles)
    clients = _parse_clients(document.get("clients", []), problems, roles)
    users = _parse_users(document.get("users", []), problems, roles)
    if problems.items:
        raise BootstrapError(problems.items)
    return BootstrapSpec(tuple(organisations), tuple(agreements), tuple(clients), tuple(users))


def _section(value: Any, name: str, problems: _Problems) -> list[Any]:
    if not isinstance(value, list):
        problems.add(name, "must be a list")
        return []
    return value


def _parse_organisations(
    value: Any, problems: _Problems, roles: dict[str, str]
) -> list[OrganisationSpec]:
    entries = _section(value, "organisations", problems)
    seen: set[str] = set()
    parsed: list[tuple[str, Mapping[str, Any]]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.add(f"organisations[{index}]", "must be an object")
            continue
        where = _entry_label("organisations", index, entry, "ods")
        _check_keys(
            problems,
            where,
            entry,
            {"ods", "name", "role", "commissioner", "break_glass"},
            {"ods", "name", "role"},
        )
        ods = _string(problems, where, entry, "ods", ODS_CODE)
        role = entry.get("role")
        if role is not None and role not in {r.value for r in OrganisationRole}:
            problems.add(where, f"role {role!r} must be one of provider, icb, la")
        if ods is not None:
            if ods in seen:
                problems.add(where, f"ods {ods!r} appears twice")
            seen.add(ods)
            if isinstance(role, str):
                roles[ods] = role
        parsed.append((where, entry))
    result: list[OrganisationSpec] = []
    for where, entry in parsed:
        name = _string(problems, where, entry, "name")
        commissioner = _string(problems, where, entry, "commissioner", ODS_CODE)
        if commissioner is not None and roles.get(commissioner) != "icb":
            problems.add(where, f"commissioner {commissioner!r} is not a registered ICB")
        break_glass = _bool(problems, where, entry, "break_glass", False)
        ods, role = entry.get("ods"), entry.get("role")
        if (
            isinstance(ods, str)
            and isinstance(role, str)
            and name
            and role in {r.value for r in OrganisationRole}
        ):
            result.append(
                OrganisationSpec(ods, name, OrganisationRole(role), commissioner, break_glass)
            )
    return result


def _parse_agreements(
    value: Any, problems: _Problems, roles: Mapping[str, str]
) -> list[AgreementSpec]:
    result: list[AgreementSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(_section(value, "agreements", problems)):
        if not isinstance(entry, dict):
            problems.add(f"agreements[{index}]", "must be an object")
            continue
        where = _entry_label("agreements", index, entry, "id")
        before = len(problems.items)
        _check_keys(
            problems,
            where,
            entry,
            {"id", "title", "parties", "purposes", "start", "end", "status"},
            {"id", "title", "parties", "purposes", "start"},
        )
        agreement_id = _string(problems, where, entry, "id", IDENTIFIER)
        if agreement_id in seen:
            problems.add(where, f"id {agreement_id!r} appears twice")
        if agreement_id:
            seen.add(agreement_id)
        title = _string(problems, where, entry, "title")
        parties = _string_list(problems, where, entry, "parties")
        if parties and len(parties) < 2:
            problems.add(where, "parties must name at least two organisations")
        for party in parties:
            if party not in roles:
                problems.add(where, f"party {party!r} is not a registered organisation")
        purposes = _string_list(problems, where, entry, "purposes")
        for purpose in purposes:
            if purpose not in {p.value for p in Purpose}:
                problems.add(where, f"purpose {purpose!r} is not a code of CodeSystem purpose")
        start = _date(problems, where, entry, "start")
        end = _date(problems, where, entry, "end")
        if start and end and end < start:
            problems.add(where, "end is before start")
        status = entry.get("status", "executed")
        if status not in AGREEMENT_STATUSES:
            problems.add(where, f"status {status!r} must be one of {', '.join(AGREEMENT_STATUSES)}")
        if len(problems.items) == before and agreement_id and title and start:
            result.append(
                AgreementSpec(
                    agreement_id,
                    title,
                    tuple(parties),
                    tuple(Purpose(p) for p in purposes),
                    start,
                    end,
                    status,
                )
            )
    return result


def _parse_clients(value: Any, problems: _Problems, roles: Mapping[str, str]) -> list[ClientSpec]:
    result: list[ClientSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(_section(value, "clients", problems)):
        if not isinstance(entry, dict):
            problems.add(f"clients[{index}]", "must be an object")
            continue
        where = _entry_label("clients", index, entry, "client_id")
        before = len(problems.items)
        _check_keys(
            problems,
            where,
            entry,
            {"client_id", "organisation", "scopes", "jwks", "jwks_uri", "enabled"},
            {"client_id", "organisation", "scopes"},
        )
        client_id = _string(problems, where, entry, "client_id", IDENTIFIER)
        if client_id in seen:
            problems.add(where, f"client_id {client_id!r} appears twice")
        if client_id:
            seen.add(client_id)
        organisation = _string(problems, where, entry, "organisation", ODS_CODE)
        if organisation is not None and organisation not in roles:
            problems.add(where, f"organisation {organisation!r} is not a registered organisation")
        scopes = _string_list(problems, where, entry, "scopes")
        for scope in scopes:
            try:
                parse_scope(scope)
            except ScopeError as exc:
                problems.add(where, f"scopes: {exc}")
        jwks, jwks_uri = entry.get("jwks"), entry.get("jwks_uri")
        if (jwks is None) == (jwks_uri is None):
            problems.add(where, "exactly one of jwks and jwks_uri is required")
        elif jwks is not None:
            why = check_jwks(jwks)
            if why:
                problems.add(where, why)
        elif not isinstance(jwks_uri, str) or (why := check_jwks_uri(jwks_uri)):
            problems.add(where, "jwks_uri must be an https URL")
        enabled = _bool(problems, where, entry, "enabled", True)
        if len(problems.items) == before and client_id and organisation:
            result.append(
                ClientSpec(client_id, organisation, tuple(scopes), jwks, jwks_uri, enabled)
            )
    return result


def _parse_users(value: Any, problems: _Problems, roles: Mapping[str, str]) -> list[UserSpec]:
    result: list[UserSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(_section(value, "users", problems)):
        if not isinstance(entry, dict):
            problems.add(f"users[{index}]", "must be an object")
            continue
        where = _entry_label("users", index, entry, "username")
        before = len(problems.items)
        _check_keys(
            problems,
            where,
            entry,
            {"username", "organisation", "roles", "password", "password_hash", "enabled"},
            {"username", "organisation", "roles"},
        )
        username = _string(problems, where, entry, "username", IDENTIFIER)
        if username in seen:
            problems.add(where, f"username {username!r} appears twice")
        if username:
            seen.add(username)
        organisation = _string(problems, where, entry, "organisation", ODS_CODE)
        if organisation is not None and organisation not in roles:
            problems.add(where, f"organisation {organisation!r} is not a registered organisation")
        user_roles = _string_list(problems, where, entry, "roles")
        for role in user_roles:
            if role not in CONSOLE_ROLES:
                problems.add(where, f"role {role!r} must be one of {', '.join(CONSOLE_ROLES)}")
        password, password_hash = entry.get("password"), entry.get("password_hash")
        if (password is None) == (password_hash is None):
            problems.add(where, "exactly one of password and password_hash is required")
        elif password is not None and (
            not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH
        ):
            problems.add(where, f"password must be at least {MIN_PASSWORD_LENGTH} characters")
        elif password_hash is not None and (
            not isinstance(password_hash, str) or not is_argon2id_hash(password_hash)
        ):
            problems.add(where, "password_hash must be an argon2id hash")
        enabled = _bool(problems, where, entry, "enabled", True)
        if len(problems.items) == before and username and organisation:
            result.append(
                UserSpec(
                    username, organisation, tuple(user_roles), password, password_hash, enabled
                )
            )
    return result
