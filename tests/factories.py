"""Test factories: a controllable clock, registry entries, key pairs."""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exchange.agreements.models import Organisation
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "spec"
EXAMPLE_BOOTSTRAP = SPEC_DIR / "examples" / "bootstrap.json"


@dataclass
class FrozenClock:
    """A clock that stands still until told to move."""

    current: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def example_bootstrap() -> dict[str, Any]:
    """The spec's example bootstrap file, parsed."""
    document: dict[str, Any] = json.loads(EXAMPLE_BOOTSTRAP.read_text(encoding="utf-8"))
    return document


def audit_entry(number: int = 0, **overrides: Any) -> AuditEntry:
    """A plausible audit entry (a read by a client), distinct per `number`."""
    values: dict[str, Any] = {
        "kind": AuditKind.READ,
        "action": Action.READ,
        "outcome": Outcome.SUCCESS,
        "actor": Actor(
            client_id=f"client-{number % 7}",
            organisation="LA01",
            address="127.0.0.1",
            token_jti=f"jti-{number}",
        ),
        "request_id": f"req-{number}",
    }
    values.update(overrides)
    return AuditEntry(**values)


PDF_HEAD = b"%PDF-1.7\n"
PDF_TRAILER = b"\n%%EOF\n"


def pdf_bytes(size: int, fill: bytes | None = None) -> bytes:
    """A document of exactly `size` bytes that passes as a PDF: the header, random (or
    `fill`) bytes, and the `%%EOF` trailer at its end."""
    body_size = size - len(PDF_HEAD) - len(PDF_TRAILER)
    if body_size < 0:
        raise ValueError(f"a PDF has at least {len(PDF_HEAD) + len(PDF_TRAILER)} bytes")
    body = (
        (fill * (body_size // max(len(fill), 1) + 1))[:body_size] if fill else os.urandom(body_size)
    )
    return PDF_HEAD + body + PDF_TRAILER


def docx_bytes(extra: dict[str, bytes] | None = None) -> bytes:
    """A minimal Word document (the parts every DOCX has), as a real zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
            'package/2006/content-types"/>',
        )
        archive.writestr(
            "word/document.xml",
            '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.'
            'org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Advice</w:t></w:r></w:p></w:body>'
            "</w:document>",
        )
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
CB = "https://fhir.send-exchange.example"


def nhs_number(seed: int) -> str:
    """A valid NHS number (Modulus 11) derived from `seed`, a different one for every seed
    below 9,999,999: each seed has its own block of ten candidates, and one in eleven
    candidates has no valid check digit, so every block holds a valid one."""
    for candidate in range(seed * 10, seed * 10 + 10):
        digits = f"{900000000 + candidate % 99999999:09d}"
        total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True))
        check = (11 - total % 11) % 11
        if check != 10:
            return f"{digits}{check}"
    raise AssertionError(f"no valid NHS number near seed {seed}")  # never: see above


def patient_json(number: str, birth_date: str, given: str = "Alex") -> dict[str, Any]:
    """A Patient resource as a client would send it."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_SYSTEM, "value": number}],
        "birthDate": birth_date,
        "name": [{"given": [given], "family": "Example"}],
    }


def consent_json(
    patient_id: str,
    date_time: str,
    *,
    maker: str = "parent-with-pr",
    provision: str = "permit",
    purposes: tuple[str, ...] = ("ehcna-advice",),
    gillick: tuple[str, str] | None = None,
    mca: tuple[str, str] | None = None,
    actors: tuple[str, ...] = (),
    status: str = "active",
) -> dict[str, Any]:
    """A Consent as an LA would record it. `maker`: a parental-responsibility or
    young-person-representative code, or `self` (the child or young person)."""
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": date_time,
        "provision": {
            "type": provision,
            "action": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                            "code": "disclose",
                        }
                    ]
                }
            ],
            "purpose": [{"system": f"{CB}/CodeSystem/purpose", "code": p} for p in purposes],
        },
    }
    contained: list[dict[str, Any]] = []
    extension: list[dict[str, Any]] = []
    representative = maker in (
        "personal-welfare-deputy",
        "health-welfare-attorney",
        "parent-acting-for-young-person",
    )
    if maker == "self":
        resource["performer"] = [{"reference": f"Patient/{patient_id}"}]
        basis = "gillick-competent-child"  # young_person_json() makes the young-person form
    else:
        system = "young-person-representative" if representative else "parental-responsibility"
        contained.append(
            {
                "resourceType": "RelatedPerson",
                "id": "maker",
                "patient": {"reference": f"Patient/{patient_id}"},
                "relationship": [
                    {"coding": [{"system": f"{CB}/CodeSystem/{system}", "code": maker}]}
                ],
            }
        )
        resource["performer"] = [{"reference": "#maker"}]
        basis = "young-person-representative" if representative else "parental-responsibility"
    extension.append({"url": "basis", "valueCode": basis})
    for kind, assessment in (("gillick", gillick), ("mental-capacity-act", mca)):
        if assessment is None:
            continue
        outcome, effective = assessment
        contained.append(
            {
                "resourceType": "Observation",
                "id": kind,
                "status": "final",
                "code": {
                    "coding": [
                        {"system": f"{CB}/CodeSystem/capacity-assessment-type", "code": kind}
                    ]
                },
                "subject": {"reference": f"Patient/{patient_id}"},
                "effectiveDateTime": effective,
                "performer": [{"display": "Dr A Example"}],
                "valueCodeableConcept": {
                    "coding": [
                        {"system": f"{CB}/CodeSystem/capacity-assessment-outcome", "code": outcome}
                    ]
                },
            }
        )
        extension.append({"url": "capacityAssessment", "valueReference": {"reference": f"#{kind}"}})
    if contained:
        resource["contained"] = contained
    resource["extension"] = [
        {"url": f"{CB}/StructureDefinition/decision-maker", "extension": extension}
    ]
    if actors:
        resource["provision"]["actor"] = [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "IRCP",
                        }
                    ]
                },
                "reference": {
                    "identifier": {
                        "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                        "value": ods,
                    }
                },
            }
            for ods in actors
        ]
    return resource


def young_person_json(patient_id: str, date_time: str, **kwargs: Any) -> dict[str, Any]:
    """A Consent made by a young person themself (basis young-person)."""
    resource = consent_json(patient_id, date_time, maker="self", **kwargs)
    resource["extension"][0]["extension"][0]["valueCode"] = "young-person"
    return resource


def task_json(
    patient_id: str,
    owner: str = "PRV01",
    *,
    task_type: str = "ehcna-health-advice",
    reason: str | None = "6-1-c",
    **extra: Any,
) -> dict[str, Any]:
    """An advice request as an LA sends it (the spec's example, for a given patient)."""
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": f"{CB}/CodeSystem/task-type", "code": task_type}]},
        "identifier": [{"system": f"{CB}/Id/la-case-reference", "value": "EHC-2026-00412"}],
        "for": {"reference": f"Patient/{patient_id}"},
        "owner": {
            "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": owner}
        },
        "note": [{"text": "EHC needs assessment agreed at panel on 2026-11-18."}],
    }
    if reason is not None:
        resource["reasonCode"] = {
            "coding": [{"system": f"{CB}/CodeSystem/regulation", "code": reason}]
        }
    resource.update(extra)
    return resource


def status_reason(code: str) -> dict[str, Any]:
    """A task-status-reason CodeableConcept."""
    return {"coding": [{"system": f"{CB}/CodeSystem/task-status-reason", "code": code}]}


def output(kind: str, **value: Any) -> dict[str, Any]:
    """A Task.output of a task-output-type."""
    return {
        "type": {"coding": [{"system": f"{CB}/CodeSystem/task-output-type", "code": kind}]},
        **value,
    }


def make_organisation(db: Any, ods: str, role: str = "provider") -> Any:
    """Register an organisation directly (for tests below the API); its id."""
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    with db.transaction() as session:
        organisation = Organisation(
            ods=ods,
            name=f"Test {ods}",
            role=role,
            break_glass=False,
            version=1,
            created=now,
            updated=now,
        )
        session.add(organisation)
        session.flush()
        return organisation.id
