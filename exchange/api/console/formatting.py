"""How the console writes values people read: London times, NHS numbers in 3-3-4 groups,
codes in words."""

from __future__ import annotations

from datetime import date, datetime
from typing import Final

from flask import Flask

from exchange.clock import LONDON

OUTCOME_TAGS: Final = {"success": "nhsuk-tag--green", "refused": "nhsuk-tag--red"}


def london_time(moment: datetime | None) -> str:
    """An instant as London wall-clock time, to the second."""
    if moment is None:
        return ""
    return moment.astimezone(LONDON).strftime("%d %b %Y %H:%M:%S")


def long_date(day: date | None) -> str:
    """A date as `1 Dec 2026`."""
    return "" if day is None else f"{day.day} {day.strftime('%b %Y')}"


def nhs_number(number: str | None) -> str:
    """An NHS number as people write it: 943 476 5919."""
    if not number or len(number) != 10:
        return number or ""
    return f"{number[:3]} {number[3:6]} {number[6:]}"


def words(code: str | None) -> str:
    """A kebab-case code as words: `ehcna-advice` -> `ehcna advice`."""
    return (code or "").replace("-", " ").replace(":", ": ")


def outcome_tag(outcome: str) -> str:
    """The NHS.UK tag colour class for an access-log outcome."""
    return OUTCOME_TAGS.get(outcome, "nhsuk-tag--orange")


def init_app(app: Flask) -> None:
    """Register the filters on the app's Jinja environment."""
    app.add_template_filter(london_time, "london_time")
    app.add_template_filter(long_date, "long_date")
    app.add_template_filter(nhs_number, "nhs_number")
    app.add_template_filter(words, "words")
    app.add_template_filter(outcome_tag, "outcome_tag")
