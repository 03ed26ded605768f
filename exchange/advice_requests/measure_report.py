"""The six-week report as FHIR: a `MeasureReport` of `CB/Measure/six-week-compliance`
(`advice-requests.md`, Reports) — one group per measure, each stratified by current owner
and by requesting LA, the exceptions as `evaluatedResource`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from exchange import codes
from exchange.advice_requests.six_weeks import Score, SixWeekReport
from exchange.codes import SixWeekMeasure, code_system_url
from exchange.versions import instant

UCUM: Final = "http://unitsofmeasure.org"
MEASURE_POPULATION: Final = "http://terminology.hl7.org/CodeSystem/measure-population"
#: The stratifiers, as `stratifier.code.text` names them.
OWNER: Final = "owner"
REQUESTER: Final = "requester"


def _measure_code(measure: SixWeekMeasure) -> dict[str, Any]:
    return {
        "coding": [
            {
                "system": code_system_url("six-week-measure"),
                "code": measure.value,
                "display": measure.value.replace("-", " ").capitalize(),
            }
        ]
    }


def _percent(value: Decimal) -> dict[str, Any]:
    # A JSON number with one decimal place, as the spec asks (87.5, 100.0).
    return {"value": float(value), "unit": "%", "system": UCUM, "code": "%"}


def _count_population(count: int) -> list[dict[str, Any]]:
    return [
        {
            "code": {"coding": [{"system": MEASURE_POPULATION, "code": "measure-population"}]},
            "count": count,
        }
    ]


def _stratifier(name: str, strata: list[dict[str, Any]]) -> dict[str, Any]:
    stratifier: dict[str, Any] = {"code": [{"text": name}]}
    if strata:
        stratifier["stratum"] = strata
    return stratifier


def _score_group(score: Score) -> dict[str, Any]:
    group: dict[str, Any] = {"code": _measure_code(SixWeekMeasure.PERCENT_WITHIN_6_WEEKS)}
    if score.total is not None:
        group["measureScore"] = _percent(score.total)
    group["stratifier"] = [
        _stratifier(
            name,
            [
                {"value": {"text": ods}, "measureScore": _percent(value)}
                for ods, value in by.items()
            ],
        )
        for name, by in ((OWNER, score.by_owner), (REQUESTER, score.by_requester))
    ]
    return group


def measure_report(report: SixWeekReport) -> dict[str, Any]:
    """The report as a `MeasureReport` (status complete, type summary)."""
    groups: list[dict[str, Any]] = []
    for measure in SixWeekMeasure:
        if measure is SixWeekMeasure.PERCENT_WITHIN_6_WEEKS:
            groups.append(_score_group(report.percent))
            continue
        figure = report.figures[measure]
        groups.append(
            {
                "code": _measure_code(measure),
                "population": _count_population(figure.total),
                "stratifier": [
                    _stratifier(
                        name,
                        [
                            {"value": {"text": ods}, "population": _count_population(count)}
                            for ods, count in by.items()
                        ],
                    )
                    for name, by in ((OWNER, figure.by_owner), (REQUESTER, figure.by_requester))
                ],
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": codes.SIX_WEEK_MEASURE,
        "date": instant(report.generated),
    }
    if report.reporter is not None:
        reporter: dict[str, Any] = {
            "identifier": {"system": codes.ODS_SYSTEM, "value": report.reporter}
        }
        if report.reporter_name:
            reporter["display"] = report.reporter_name
        resource["reporter"] = reporter
    resource["period"] = {
        "start": report.month.first.isoformat(),
        "end": report.month.last.isoformat(),
    }
    resource["group"] = groups
    if report.exceptions:
        resource["evaluatedResource"] = [
            {"reference": f"Task/{exception.task_id}"} for exception in report.exceptions
        ]
    return resource
