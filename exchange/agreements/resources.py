"""The registry as FHIR: `Organization` and `Contract` (data-sharing agreement), read-only.

The Contract follows `access.md`: identifier and url from the operator's agreement id,
one signer per party with the type and signature R4 requires (filled from the registry:
who registered it, when), one term action per purpose with the purpose as `intent`.
"""

from __future__ import annotations

from typing import Any

from exchange import codes
from exchange.agreements.models import Agreement, Organisation

_SIGNER_TYPE = "http://terminology.hl7.org/CodeSystem/contractsignertypecodes"
_SIGNATURE_TYPE = "urn:iso-astm:E1762-95:2013"
_ACTION_STATUS = "http://hl7.org/fhir/contract-actionstatus"


def _instant(value: Any) -> str:
    return str(value.isoformat(timespec="milliseconds")).replace("+00:00", "Z")


def organisation_reference(organisation: Organisation) -> dict[str, Any]:
    """A reference to an organisation by ODS identifier, with its name."""
    return reference_by_ods(organisation.ods, organisation.name)


def reference_by_ods(ods: str, name: str) -> dict[str, Any]:
    """`organisation_reference` from the ODS code and name alone."""
    return {"identifier": {"system": codes.ODS_SYSTEM, "value": ods}, "display": name}


def organization_resource(organisation: Organisation) -> dict[str, Any]:
    """The FHIR Organization of a registered organisation."""
    return {
        "resourceType": "Organization",
        "id": str(organisation.id),
        "meta": {
            "versionId": str(organisation.version),
            "lastUpdated": _instant(organisation.updated),
        },
        "identifier": [{"system": codes.ODS_SYSTEM, "value": organisation.ods}],
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": codes.code_system_url("organisation-role"),
                        "code": organisation.role,
                    }
                ]
            }
        ],
        "name": organisation.name,
    }


def contract_resource(agreement: Agreement) -> dict[str, Any]:
    """The FHIR Contract (profile send-data-sharing-agreement) of a registered agreement."""
    applies: dict[str, str] = {"start": agreement.start.isoformat()}
    if agreement.end is not None:
        applies["end"] = agreement.end.isoformat()
    registered = _instant(agreement.created)
    signers = [
        {
            "type": {"system": _SIGNER_TYPE, "code": "COPART", "display": "Co-Participant"},
            "party": organisation_reference(party.organisation),
            "signature": [
                {
                    "type": [
                        {
                            "system": _SIGNATURE_TYPE,
                            "code": "1.2.840.10065.1.12.1.3",
                            "display": "Co-participant's Signature",
                        }
                    ],
                    "when": registered,
                    "who": {
                        "identifier": {
                            "system": codes.CONSOLE_USER_SYSTEM,
                            "value": agreement.registered_by,
                        }
                    },
                }
            ],
        }
        for party in agreement.parties
    ]
    actions = [
        {
            "type": {
                "coding": [
                    {
                        "system": codes.code_system_url("agreement-action"),
                        "code": codes.AgreementAction.SHARE_INFORMATION.value,
                    }
                ]
            },
            "intent": {"coding": [{"system": codes.code_system_url("purpose"), "code": purpose}]},
            "status": {"coding": [{"system": _ACTION_STATUS, "code": "complete"}]},
        }
        for purpose in agreement.purpose_codes
    ]
    return {
        "resourceType": "Contract",
        "id": str(agreement.id),
        "meta": {
            "versionId": str(agreement.version),
            "lastUpdated": _instant(agreement.updated),
            "profile": [codes.PROFILE_DATA_SHARING_AGREEMENT],
        },
        "identifier": [{"system": codes.AGREEMENT_SYSTEM, "value": agreement.agreement_id}],
        "url": f"{codes.AGREEMENT_URL_BASE}/{agreement.agreement_id}",
        "version": str(agreement.version),
        "status": agreement.status,
        "issued": registered,
        "applies": applies,
        "title": agreement.title,
        "signer": signers,
        "term": [{"offer": {"text": agreement.title}, "action": actions}],
    }
