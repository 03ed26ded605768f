"""Why a use case refused: domain errors with a stable, kebab-case `code`.

Use cases raise these and never think about HTTP; each front door maps the code its own way
(`api/errors.py`: one table from code to HTTP status and FHIR issue type; the console: a
page; the CLI: one sentence). A refusal also says what it concerned (`subject`), so the one
`audit.record_refusal` can name the records, the patient and the custodian in its audit
record once the refused work has been rolled back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from exchange.audit.events import Entity
from exchange.codes import AccessDenialReason


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem, as an OperationOutcome issue will show it: FHIR issue type (`code`),
    what is wrong, where (FHIRPath expressions), and an access-denial reason if any."""

    severity: str
    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    details_code: str | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    """What a refusal concerned, for its audit record."""

    entities: tuple[Entity, ...] = ()
    patient_id: uuid.UUID | None = None
    custodian: str | None = None


class DomainError(Exception):
    """A refused use case: `code` is stable and machine-readable, the message is for people
    (no personal data, no internals)."""

    code: ClassVar[str] = "error"

    def __init__(
        self, message: str, *, subject: Subject | None = None, issues: Sequence[Issue] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.subject = subject or Subject()
        self.issues = tuple(issues)

    @property
    def reason(self) -> str:
        """The code as the audit trail records it (`outcomeDesc`)."""
        return self.code


class NotFound(DomainError):
    """The record, or the caller's relationship to it, does not exist (the same answer
    either way, so a caller cannot learn that a record exists)."""

    code = "not-found"

    def __init__(self, resource_type: str, resource_id: object | None = None) -> None:
        what = f"{resource_type}/{resource_id}" if resource_id is not None else resource_type
        super().__init__(f"{what} is not known")


class Malformed(DomainError):
    """The request cannot be read as what it should be (not JSON, wrong resource type)."""

    code = "structure"


class Required(DomainError):
    """Something the request must carry is missing (a break-glass justification)."""

    code = "required"


class Invalid(DomainError):
    """The content breaks a rule of the spec or a profile; every problem is an issue with
    its FHIRPath expression."""

    code = "invalid"

    def __init__(self, issues: Sequence[Issue]) -> None:
        first = issues[0] if issues else Issue("error", "invalid", "the resource is invalid")
        super().__init__(first.diagnostics, issues=issues)


def invalid(expression: str, message: str, code: str = "business-rule") -> Invalid:
    """One broken rule, at `expression`."""
    return Invalid([Issue("error", code, message, (expression,))])


class Conflict(DomainError):
    """The request contradicts what is stored (a second Patient for an NHS number, a
    birth date that contradicts the registered one)."""

    code = "conflict"


class Duplicate(Conflict):
    """The record exists already and the request did not ask for a conditional create."""

    code = "duplicate"


class VersionMismatch(DomainError):
    """`If-Match` names another version than the current one."""

    code = "version-mismatch"


class Forbidden(DomainError):
    """The caller's organisation may not make this change (its role, or its part in the
    record): not an access-decision refusal."""

    code = "forbidden"


class AccessDenied(DomainError):
    """The access decision refused (`access.md`): no agreement, consent, break-glass."""

    code = "access-denied"

    def __init__(
        self, reason: AccessDenialReason, message: str, *, subject: Subject | None = None
    ) -> None:
        super().__init__(message, subject=subject)
        self.denial = reason

    @property
    def reason(self) -> str:
        return self.denial.value


class TooLarge(DomainError):
    """The content is larger than this service accepts."""

    code = "too-large"


class UnsupportedContent(DomainError):
    """The content is not what its declared type says, or not a type this service takes."""

    code = "unsupported-content"


class EmptyContent(DomainError):
    """A document without a byte."""

    code = "empty-content"


class DigestMismatch(DomainError):
    """The content does not match the digest the client sent with it."""

    code = "digest-mismatch"


class Gone(DomainError):
    """The content was destroyed (retention): it no longer exists."""

    code = "gone"


class Unavailable(DomainError):
    """A part the request needs (database, document store, key service) is down; nothing
    was half-done."""

    code = "unavailable"


class Corrupted(DomainError):
    """Stored content failed its integrity check: it is never served."""

    code = "corrupted"


@dataclass
class Problems:
    """Collects issues, then raises them all at once as Invalid (422 lists every problem)."""

    issues: list[Issue] = field(default_factory=list)

    def add(self, expression: str, message: str, code: str = "business-rule") -> None:
        """Note a broken rule at `expression`."""
        self.issues.append(Issue("error", code, message, (expression,)))

    def raise_any(self) -> None:
        """Raise Invalid if any problem was noted."""
        if self.issues:
            raise Invalid(self.issues)


__all__ = [
    "AccessDenied",
    "Conflict",
    "Corrupted",
    "DigestMismatch",
    "DomainError",
    "Duplicate",
    "EmptyContent",
    "Forbidden",
    "Gone",
    "Invalid",
    "Issue",
    "Malformed",
    "NotFound",
    "Problems",
    "Required",
    "Subject",
    "TooLarge",
    "Unavailable",
    "UnsupportedContent",
    "VersionMismatch",
    "invalid",
]
