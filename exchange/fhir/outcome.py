"""OperationOutcome: the one error shape of the `/fhir` API.

Views raise `FhirError` (or its subclasses); the blueprint's error handler turns it into an
OperationOutcome with the right status. Diagnostics are written for people and never carry
secrets, stack traces or class names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exchange.codes import AccessDenialReason, code_system_url


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue."""

    severity: str
    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    details_code: str | None = None

    def to_fhir(self) -> dict[str, Any]:
        """The issue as FHIR JSON."""
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.details_code is not None:
            issue["details"] = {
                "coding": [
                    {
                        "system": code_system_url("access-denial-reason"),
                        "code": self.details_code,
                    }
                ],
                "text": self.details_code,
            }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource holding `issues`."""
    return {"resourceType": "OperationOutcome", "issue": [issue.to_fhir() for issue in issues]}


@dataclass
class FhirError(Exception):
    """An error answered with an OperationOutcome and an HTTP status."""

    status: int
    code: str
    diagnostics: str
    details_code: str | None = None
    expression: tuple[str, ...] = ()
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    #: Set when the feature raising it has audited the refusal itself (with its entities).
    audited: bool = False
    #: What the refusal's audit record should name (entities as (reference, role) pairs,
    #: and the patient), written by the error handler after the request's transaction.
    audit_entities: tuple[tuple[str, str], ...] = ()
    audit_patient: str | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.diagnostics}"

    def outcome(self) -> dict[str, Any]:
        """The OperationOutcome for this error."""
        issues = self.issues or [
            Issue("error", self.code, self.diagnostics, self.expression, self.details_code)
        ]
        return operation_outcome(issues)


def not_found(resource_type: str, resource_id: str | None = None) -> FhirError:
    """404: the record, or the caller's relationship to it, does not exist (`access.md`:
    the same answer either way, so a caller cannot learn that a record exists)."""
    what = f"{resource_type}/{resource_id}" if resource_id else resource_type
    return FhirError(404, "not-found", f"{what} is not known")


def forbidden(reason: AccessDenialReason, diagnostics: str) -> FhirError:
    """403 with an access-denial-reason code."""
    return FhirError(403, "forbidden", diagnostics, details_code=reason.value)


def invalid(issues: list[Issue], status: int = 422) -> FhirError:
    """400 (unparseable) or 422 (breaks a rule): every problem listed with its expression."""
    first = issues[0] if issues else Issue("error", "invalid", "the resource is invalid")
    return FhirError(status, first.code, first.diagnostics, issues=issues)
