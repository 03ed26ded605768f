"""Consent decision benchmark: `decide()` for a patient with 50 Consents against one with 1,
same recipient and purpose, measured in one run (reported, no target: the access decision
as a whole is held to < 25% of a document read's server time, `quality.md`).
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from typing import Any

from exchange.clock import LONDON
from exchange.codes import EXT_DECISION_MAKER, ODS_SYSTEM, code_system_url
from exchange.consent.decision import decide
from exchange.consent.records import ConsentRecord, consent_record

PATIENT_ID = "bench-patient"
BIRTH = date(2012, 5, 10)
RECIPIENT = "RXX01"
PURPOSE = "ehcna-advice"
AT = datetime(2026, 11, 20, 12, 0, tzinfo=LONDON)
ITERATIONS = 2_000
MAKERS = ["parent-with-pr", "special-guardian", "step-parent-with-pr", "legal-guardian"]


def _consent(number: int) -> dict[str, Any]:
    """A realistic Consent: parents, guardians and the child themself (Gillick assessed)
    over the months before the decision, some withdrawn, some for other purposes."""
    made = datetime(2026, 11, 1, 10, 0, tzinfo=LONDON) - timedelta(days=7 * number)
    patient = f"Patient/{PATIENT_ID}"
    by_child = number % 5 == 4
    contained: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    if by_child:
        performer = {"reference": patient}
        basis = "gillick-competent-child"
        contained.append(
            {
                "resourceType": "Observation",
                "id": "gillick",
                "status": "final",
                "code": {
                    "coding": [
                        {"system": code_system_url("capacity-assessment-type"), "code": "gillick"}
                    ]
                },
                "effectiveDateTime": (made - timedelta(days=3)).date().isoformat(),
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": code_system_url("capacity-assessment-outcome"),
                            "code": "competent" if number % 2 else "not-competent",
                        }
                    ]
                },
            }
        )
        parts.append({"url": "capacityAssessment", "valueReference": {"reference": "#gillick"}})
    else:
        performer = {"reference": "#maker"}
        basis = "parental-responsibility"
        contained.append(
            {
                "resourceType": "RelatedPerson",
                "id": "maker",
                "patient": {"reference": patient},
                "relationship": [
                    {
                        "coding": [
                            {
                                "system": code_system_url("parental-responsibility"),
                                "code": MAKERS[number % len(MAKERS)],
                            }
                        ]
                    }
                ],
            }
        )
    return {
        "resourceType": "Consent",
        "status": "inactive" if number % 7 == 3 else "active",
        "patient": {"reference": patient},
        "dateTime": made.isoformat(),
        "contained": contained,
        "extension": [
            {"url": EXT_DECISION_MAKER, "extension": [{"url": "basis", "valueCode": basis}, *parts]}
        ],
        "performer": [performer],
        "provision": {
            "type": "deny" if number % 3 == 0 else "permit",
            "purpose": [
                {
                    "system": code_system_url("purpose"),
                    "code": PURPOSE if number % 4 else "annual-review",
                }
            ],
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"identifier": {"system": ODS_SYSTEM, "value": RECIPIENT}},
                }
            ],
        },
    }


def _records(count: int) -> list[ConsentRecord]:
    return [consent_record(_consent(number), f"c{number}", PATIENT_ID) for number in range(count)]


def seconds_per_decision(consents: list[ConsentRecord], iterations: int) -> float:
    """Mean wall-clock seconds of one `decide()` call over `iterations` calls."""
    started = time.perf_counter()
    for _ in range(iterations):
        decide(BIRTH, consents, RECIPIENT, PURPOSE, AT)
    return (time.perf_counter() - started) / iterations


def main() -> None:
    """Print the consent-decision row of the benchmark table."""
    many, one = _records(50), _records(1)
    seconds_per_decision(many, 50)  # warm up
    t50 = seconds_per_decision(many, ITERATIONS)
    t1 = seconds_per_decision(one, ITERATIONS * 10)
    print(
        f"{'consent decision, 50 consents vs 1 (s/decision)':<48} {t50:>14.6f} {t1:>14.6f} "
        f"{t50 / t1:>7.2f} {'report':>7}"
    )


if __name__ == "__main__":
    main()
