"""This service's rules for Patient beyond R4 structure: an NHS number that passes its
check digit, a birth date (the consent decision depends on it), and nothing else but a name
and gender (data minimisation, `api.md`)."""

from __future__ import annotations

from typing import Any

from exchange.codes import NHS_NUMBER_SYSTEM
from exchange.errors import Issue
from exchange.patients.nhs_number import is_valid_nhs_number

_GENDERS = frozenset({"male", "female", "other", "unknown"})
#: Elements a client may send: what is kept, plus what the server sets anyway.
_ACCEPTED = frozenset({"resourceType", "id", "meta", "identifier", "birthDate", "name", "gender"})


def patient_profile_issues(resource: dict[str, Any]) -> list[Issue]:
    """Problems with a Patient's NHS number and birth date, each with its expression."""
    issues: list[Issue] = [
        Issue(
            "error",
            "business-rule",
            f"Patient.{element} is not kept: the exchange holds only the NHS number, birth "
            "date, name and gender of a child (data minimisation, UK GDPR Art. 5(1)(c)); it "
            "is not a case-management system",
            (f"Patient.{element}",),
        )
        for element in sorted(set(resource) - _ACCEPTED)
    ]
    identifiers = resource.get("identifier") or []
    issues += [
        Issue(
            "error",
            "business-rule",
            f"only the NHS number ({NHS_NUMBER_SYSTEM}) is kept as a Patient identifier",
            (f"Patient.identifier[{index}]",),
        )
        for index, identifier in enumerate(identifiers)
        if not (isinstance(identifier, dict) and identifier.get("system") == NHS_NUMBER_SYSTEM)
    ]
    nhs = [
        (i, x)
        for i, x in enumerate(identifiers)
        if isinstance(x, dict) and x.get("system") == NHS_NUMBER_SYSTEM
    ]
    if len(nhs) != 1:
        issues.append(
            Issue(
                "error",
                "required",
                f"Patient needs exactly one identifier with system {NHS_NUMBER_SYSTEM}",
                ("Patient.identifier",),
            )
        )
    else:
        index, identifier = nhs[0]
        value = identifier.get("value")
        if not isinstance(value, str) or not is_valid_nhs_number(value):
            issues.append(
                Issue(
                    "error",
                    "value",
                    "the NHS number must be 10 digits with a valid Modulus 11 check digit",
                    (f"Patient.identifier[{index}].value",),
                )
            )
    if "gender" in resource and resource["gender"] not in _GENDERS:
        # R4's required binding (administrative-gender), which fhir.resources does not check.
        issues.append(
            Issue(
                "error",
                "code-invalid",
                "Patient.gender must be male, female, other or unknown",
                ("Patient.gender",),
            )
        )
    if not isinstance(resource.get("birthDate"), str) or len(resource["birthDate"]) != 10:
        issues.append(
            Issue(
                "error",
                "required",
                "Patient.birthDate (a full date) is required",
                ("Patient.birthDate",),
            )
        )
    return issues
