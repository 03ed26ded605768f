"""This service's rules for Task beyond R4 structure (`advice-requests.md`; profile
`send-advice-request`): the bindings fhir.resources does not check, and the shape of
inputs and outputs."""

from __future__ import annotations

from typing import Any, Final

from exchange.codes import (
    ODS_SYSTEM,
    ClockExceptionReason,
    Regulation,
    TaskInputType,
    TaskOutputType,
    TaskStatusReason,
    TaskType,
    code_system_url,
)
from exchange.errors import Issue
from exchange.fhir.validation import check_coding

#: R4's required binding for Task.status.
TASK_STATUSES: Final = frozenset(
    {
        "draft",
        "requested",
        "received",
        "accepted",
        "rejected",
        "ready",
        "cancelled",
        "in-progress",
        "on-hold",
        "failed",
        "completed",
        "entered-in-error",
    }
)


def _code(concept: Any, system: str) -> str | None:
    for coding in (concept or {}).get("coding", []) if isinstance(concept, dict) else []:
        if isinstance(coding, dict) and coding.get("system") == system:
            code = coding.get("code")
            return code if isinstance(code, str) else None
    return None


def task_type_of(resource: dict[str, Any]) -> str | None:
    """The Task's `code` from task-type."""
    return _code(resource.get("code"), code_system_url("task-type"))


def reason_of(resource: dict[str, Any]) -> str | None:
    """The Task's `reasonCode` from regulation."""
    return _code(resource.get("reasonCode"), code_system_url("regulation"))


def status_reason_of(resource: dict[str, Any]) -> str | None:
    """The Task's `statusReason` from task-status-reason."""
    return _code(resource.get("statusReason"), code_system_url("task-status-reason"))


def typed_items(
    resource: dict[str, Any], element: str, name: str
) -> list[tuple[str | None, dict[str, Any]]]:
    """(type code, item) for each `input` or `output`."""
    system = code_system_url(name)
    return [
        (_code(item.get("type"), system), item)
        for item in resource.get(element) or []
        if isinstance(item, dict)
    ]


def ods_of(reference: Any) -> str | None:
    """The ODS code of an organisation reference by identifier."""
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    if (
        isinstance(identifier, dict)
        and identifier.get("system") == ODS_SYSTEM
        and isinstance(identifier.get("value"), str)
    ):
        return str(identifier["value"])
    return None


def task_profile_issues(resource: dict[str, Any]) -> list[Issue]:
    """Problems with a Task against the advice-request profile, each with its expression."""
    issues: list[Issue] = []
    if resource.get("status") not in TASK_STATUSES:
        issues.append(
            Issue("error", "code-invalid", "Task.status is not an R4 task status", ("Task.status",))
        )
    if resource.get("intent") != "order":
        issues.append(Issue("error", "value", "Task.intent must be order", ("Task.intent",)))
    issues += check_coding(
        resource.get("code"), code_system_url("task-type"), {t.value for t in TaskType}, "Task.code"
    )
    reason_required = task_type_of(resource) == TaskType.EHCNA_HEALTH_ADVICE
    issues += check_coding(
        resource.get("reasonCode"),
        code_system_url("regulation"),
        {r.value for r in Regulation},
        "Task.reasonCode",
        required=reason_required,
    )
    reference = (resource.get("for") or {}).get("reference")
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        issues.append(
            Issue("error", "required", "Task.for must reference the Patient", ("Task.for",))
        )
    if ods_of(resource.get("owner")) is None:
        issues.append(
            Issue(
                "error",
                "required",
                f"Task.owner must be an organisation by {ODS_SYSTEM} identifier",
                ("Task.owner",),
            )
        )
    if "statusReason" in resource:
        issues += check_coding(
            resource["statusReason"],
            code_system_url("task-status-reason"),
            {r.value for r in TaskStatusReason},
            "Task.statusReason",
        )
    for index, (kind, item) in enumerate(typed_items(resource, "input", "task-input-type")):
        where = f"Task.input[{index}]"
        if kind == TaskInputType.SUPPORTING_INFORMATION:
            ref = (item.get("valueReference") or {}).get("reference")
            if not isinstance(ref, str) or not ref.startswith("DocumentReference/"):
                issues.append(
                    Issue(
                        "error",
                        "value",
                        "supporting-information needs a valueReference to a DocumentReference",
                        (where,),
                    )
                )
        elif kind in (TaskInputType.TRIBUNAL_ORDER_RECEIVED, TaskInputType.TRIBUNAL_DECISION_DATE):
            if not isinstance(item.get("valueDate"), str):
                issues.append(Issue("error", "value", f"{kind} needs a valueDate", (where,)))
        else:
            issues.append(
                Issue(
                    "error",
                    "code-invalid",
                    "Task.input.type must come from task-input-type",
                    (f"{where}.type",),
                )
            )
    for index, (kind, item) in enumerate(typed_items(resource, "output", "task-output-type")):
        where = f"Task.output[{index}]"
        if kind == TaskOutputType.ADVICE:
            ref = (item.get("valueReference") or {}).get("reference")
            if not isinstance(ref, str) or not ref.startswith("DocumentReference/"):
                issues.append(
                    Issue(
                        "error",
                        "value",
                        "an advice output needs a valueReference to a DocumentReference",
                        (where,),
                    )
                )
        elif kind in (
            TaskOutputType.NOT_ON_WAITING_LIST,
            TaskOutputType.NOT_SEEN_IN_LAST_12_MONTHS,
        ):
            if not isinstance(item.get("valueBoolean"), bool):
                issues.append(Issue("error", "value", f"{kind} needs a valueBoolean", (where,)))
        elif kind == TaskOutputType.CLOCK_EXCEPTION:
            issues += check_coding(
                item.get("valueCodeableConcept"),
                code_system_url("clock-exception-reason"),
                {r.value for r in ClockExceptionReason},
                f"{where}.valueCodeableConcept",
            )
        else:
            issues.append(
                Issue(
                    "error",
                    "code-invalid",
                    "Task.output.type must come from task-output-type",
                    (f"{where}.type",),
                )
            )
    return issues
