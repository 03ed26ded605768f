"""The dashboard's charts as geometry for a server-drawn SVG (no JavaScript, nothing
loaded from elsewhere): % of requests completed within 6 weeks per month, and per provider
and per LA for one month. The template draws the shapes; a table beside each chart carries
the same figures for people who cannot see it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

WIDTH: Final = 640
HEIGHT: Final = 260
LEFT: Final = 48
TOP: Final = 20
BOTTOM: Final = 40
ROW_HEIGHT: Final = 28
LABEL_WIDTH: Final = 90


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: where it is, what it is for, the value written beside it."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: str
    label_x: float
    label_y: float
    value_x: float
    value_y: float


@dataclass(frozen=True, slots=True)
class Tick:
    """A gridline of the percentage axis."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    label_x: float
    label_y: float


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart's size, bars and gridlines."""

    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]


def percent_text(score: Decimal | None) -> str:
    """A score as the report writes it (one decimal), or a dash when nothing was due."""
    return "no requests due" if score is None else f"{score:.1f}%"


def monthly(points: Sequence[tuple[str, Decimal | None]]) -> Chart:
    """Vertical bars, one per month (label, score), on a 0-100% axis."""
    plot_height = HEIGHT - TOP - BOTTOM
    plot_width = WIDTH - LEFT - 10
    slot = plot_width / max(len(points), 1)
    ticks = [
        Tick(
            LEFT,
            TOP + plot_height * (1 - p / 100),
            WIDTH - 10,
            TOP + plot_height * (1 - p / 100),
            f"{p}%",
            LEFT - 6,
            TOP + plot_height * (1 - p / 100) + 4,
        )
        for p in (0, 25, 50, 75, 100)
    ]
    bars = []
    for index, (label, score) in enumerate(points):
        value = float(score or 0)
        height = plot_height * value / 100
        x = LEFT + slot * index + slot * 0.2
        y = TOP + plot_height - height
        bars.append(
            Bar(
                x,
                y,
                slot * 0.6,
                height,
                label,
                percent_text(score) if score is not None else "none due",
                x + slot * 0.3,
                HEIGHT - BOTTOM + 18,
                x + slot * 0.3,
                y - 6 if score is not None else TOP + plot_height - 6,
            )
        )
    return Chart(WIDTH, HEIGHT, bars, ticks)


def by_organisation(scores: Mapping[str, Decimal]) -> Chart:
    """Horizontal bars, one per organisation (ODS code -> score), on a 0-100% axis."""
    rows = sorted(scores.items())
    height = TOP + ROW_HEIGHT * max(len(rows), 1) + BOTTOM
    plot_width = WIDTH - LABEL_WIDTH - 70
    ticks = [
        Tick(
            LABEL_WIDTH + plot_width * p / 100,
            TOP,
            LABEL_WIDTH + plot_width * p / 100,
            height - BOTTOM,
            f"{p}%",
            LABEL_WIDTH + plot_width * p / 100,
            height - BOTTOM + 16,
        )
        for p in (0, 50, 100)
    ]
    bars = []
    for index, (ods, score) in enumerate(rows):
        y = TOP + ROW_HEIGHT * index + 4
        width = plot_width * float(score) / 100
        bars.append(
            Bar(
                LABEL_WIDTH,
                y,
                width,
                ROW_HEIGHT - 8,
                ods,
                percent_text(score),
                LABEL_WIDTH - 8,
                y + (ROW_HEIGHT - 8) / 2 + 4,
                LABEL_WIDTH + width + 6,
                y + (ROW_HEIGHT - 8) / 2 + 4,
            )
        )
    return Chart(WIDTH, height, bars, ticks)
