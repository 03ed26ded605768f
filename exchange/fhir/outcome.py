"""OperationOutcome: the one error shape of the `/fhir` API.

Views raise `FhirError` (or its subclasses); the blueprint's error handler turns it into an
OperationOutcome with the right status. Diagnostics are written for people and never carry
secrets, stack traces or class names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exchange.codes import AccessDenialReason, code_system_url
from exchange.errors import Issue


def issue_json(issue: Issue) -> dict[str, Any]:
    """One OperationOutcome.issue as FHIR JSON."""
    rendered: dict[str, Any] = {
        "severity": issue.severity,
        "code": issue.code,
        "diagnostics": issue.diagnostics,
    }
    if issue.details_code is not None:
        rendered["details"] = {
            "coding": [
                {"system": code_system_url("access-denial-reason"), "code": issue.details_code}
            ],
            "text": issue.details_code,
        }
    if issue.expression:
        rendered["expression"] = list(issue.expression)
    return rendered


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource holding `issues`."""
    return {"resourceType": "OperationOutcome", "issue": [issue_json(issue) for issue in issues]}


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
