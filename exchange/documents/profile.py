"""This service's rules for DocumentReference (profile `send-health-advice`, `documents.md`)."""

from __future__ import annotations

from typing import Any, Final

from exchange.codes import DocumentType, code_system_url
from exchange.errors import Issue
from exchange.fhir.validation import check_coding

#: R4's required binding for DocumentReference.status.
DOCUMENT_STATUSES: Final = ("current", "superseded", "entered-in-error")
#: Document types an LA (the requester) may provide; the rest come from the Task's owner.
LA_DOCUMENT_TYPES: Final = frozenset(
    {DocumentType.SUPPORTING_INFORMATION, DocumentType.DRAFT_PLAN_HEALTH_SECTIONS}
)


def document_type_of(resource: dict[str, Any]) -> str | None:
    """The `type` code from document-type."""
    for coding in (resource.get("type") or {}).get("coding", []):
        if isinstance(coding, dict) and coding.get("system") == code_system_url("document-type"):
            code = coding.get("code")
            return code if isinstance(code, str) else None
    return None


def related_task_ids(resource: dict[str, Any]) -> list[str]:
    """The Task ids in `context.related`."""
    related = (resource.get("context") or {}).get("related") or []
    return [
        str(r["reference"])[5:]
        for r in related
        if isinstance(r, dict) and str(r.get("reference", "")).startswith("Task/")
    ]


def document_profile_issues(resource: dict[str, Any]) -> list[Issue]:
    """Problems with a DocumentReference against the profile, each with its expression."""
    issues: list[Issue] = []
    if resource.get("status") not in DOCUMENT_STATUSES:
        issues.append(
            Issue(
                "error",
                "code-invalid",
                "DocumentReference.status must be current, superseded or entered-in-error",
                ("DocumentReference.status",),
            )
        )
    if resource.get("docStatus") not in ("final", "preliminary"):
        issues.append(
            Issue(
                "error",
                "code-invalid",
                "DocumentReference.docStatus must be final or preliminary",
                ("DocumentReference.docStatus",),
            )
        )
    issues += check_coding(
        resource.get("type"),
        code_system_url("document-type"),
        {t.value for t in DocumentType},
        "DocumentReference.type",
    )
    subject = (resource.get("subject") or {}).get("reference")
    if not isinstance(subject, str) or not subject.startswith("Patient/"):
        issues.append(
            Issue(
                "error",
                "required",
                "DocumentReference.subject must reference the Patient",
                ("DocumentReference.subject",),
            )
        )
    if not related_task_ids(resource):
        issues.append(
            Issue(
                "error",
                "required",
                "DocumentReference.context.related must include the Task",
                ("DocumentReference.context.related",),
            )
        )
    content = resource.get("content") or []
    if len(content) != 1:
        issues.append(
            Issue(
                "error",
                "invariant",
                "DocumentReference.content must hold exactly one attachment",
                ("DocumentReference.content",),
            )
        )
    else:
        attachment = content[0].get("attachment") or {}
        title = attachment.get("title")
        if not isinstance(title, str) or not title.strip():
            issues.append(
                Issue(
                    "error",
                    "required",
                    "the attachment needs a title",
                    ("DocumentReference.content[0].attachment.title",),
                )
            )
        elif "<" in title or ">" in title:
            # A title is plain text shown to people and used as a file name; markup in it
            # is an attempt on whatever renders it (quality.md: HTML/JS in titles is refused).
            issues.append(
                Issue(
                    "error",
                    "value",
                    "the attachment title is plain text: < and > are not allowed",
                    ("DocumentReference.content[0].attachment.title",),
                )
            )
        has_url, has_data = "url" in attachment, "data" in attachment
        if has_url == has_data:
            issues.append(
                Issue(
                    "error",
                    "invariant",
                    "the attachment needs either url (Binary/<id>) or data",
                    ("DocumentReference.content[0].attachment",),
                )
            )
        elif has_url and not str(attachment["url"]).startswith("Binary/"):
            issues.append(
                Issue(
                    "error",
                    "value",
                    "attachment.url must be Binary/<id> of an upload",
                    ("DocumentReference.content[0].attachment.url",),
                )
            )
    return issues
