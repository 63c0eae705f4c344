"""The growth chart: head circumference against gestational age on the INTERGROWTH-21st centile
curves, with a subject's measurements, each linking to its job.

This module works out the geometry (SVG user units); ``templates/_growth_chart.html`` draws it as
inline SVG, so the chart needs no script, prints, and passes a CSP without inline styles.
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from flask import url_for

from core.head_measurements import growth_fields
from core.records import Job
from pipelines import intergrowth

CURVE_CENTILES = (3, 10, 50, 90, 97)
WIDTH, HEIGHT = 760, 480
# Plot area inside the SVG: room for the title above, axis labels left and below, and the
# curves' names on the right.
LEFT, RIGHT, TOP, BOTTOM = 70, 690, 44, 420
# The axes always show the whole standard; measurements outside it widen them.
DAYS_SHOWN = intergrowth.RANGE_DAYS
HC_SHOWN_MM = (50.0, 400.0)
HC_STEP_MM = 50.0
CURVE_STEP_DAYS = 2
LABEL_GAP = 12.0  # the least vertical distance between two curve names


def weeks_and_days(days: int) -> str:
    """A gestational age as obstetric notation: 143 days -> '20+3'."""
    return f"{days // 7}+{days % 7}"


def ordinal(centile: float) -> str:
    """The centile as an ordinal: '3rd', '10th', '21st', '42nd'; '<1st' and '>99th' at the ends
    (rounding would say '0th' or '100th')."""
    whole = round(centile)
    if whole < 1:
        return "<1st"
    if whole > 99:
        return ">99th"
    suffix = "th" if 10 <= whole % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(whole % 10, "th")
    return f"{whole}{suffix}"


@dataclass(frozen=True)
class Curve:
    """One centile curve: its SVG polyline points and where its name goes."""

    centile: int
    name: str
    points: str
    label_y: float


@dataclass(frozen=True)
class Tick:
    """An axis tick: its position along the axis and its label."""

    at: float
    label: str


@dataclass(frozen=True)
class Point:
    """A measurement on the chart, linking to its job."""

    job_id: uuid.UUID
    url: str
    x: float
    y: float
    tooltip: str
    highlighted: bool


@dataclass(frozen=True)
class Unplaced:
    """A measurement that cannot be drawn, and why."""

    job_id: uuid.UUID
    url: str
    reason: str


@dataclass(frozen=True)
class GrowthChart:
    """Everything the template draws."""

    title: str
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    curves: list[Curve]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    points: list[Point]
    unplaced: list[Unplaced]
    highlighted: bool


@dataclass(frozen=True)
class _Measurement:
    job: Job
    days: int
    hc_mm: float
    centile: float | None


class _Scale:
    """Maps gestational age (days) and HC (mm) onto the plot area."""

    def __init__(self, days: tuple[float, float], hc_mm: tuple[float, float]) -> None:
        self.days, self.hc_mm = days, hc_mm

    def x(self, days: float) -> float:
        low, high = self.days
        return round(LEFT + (days - low) / (high - low) * (RIGHT - LEFT), 1)

    def y(self, hc_mm: float) -> float:
        low, high = self.hc_mm
        return round(BOTTOM - (hc_mm - low) / (high - low) * (BOTTOM - TOP), 1)


def _extent(
    values: Iterable[float], shown: tuple[float, float], step: float
) -> tuple[float, float]:
    """The shown range, widened to whole steps around any value outside it."""
    values = list(values)
    low = min([shown[0], *values])
    high = max([shown[1], *values])
    return math.floor(low / step) * step, math.ceil(high / step) * step


def _spread(targets: list[float], gap: float) -> list[float]:
    """Label heights as near their targets as possible, at least ``gap`` apart (top to bottom)."""
    order = sorted(range(len(targets)), key=lambda i: targets[i])
    placed = list(targets)
    for before, after in itertools.pairwise(order):
        placed[after] = max(placed[after], placed[before] + gap)
    return placed


def _curves(scale: _Scale) -> list[Curve]:
    low, high = intergrowth.RANGE_DAYS
    days = [*range(low, high, CURVE_STEP_DAYS), high]
    ends = [scale.y(intergrowth.at_centile(c, high)) for c in CURVE_CENTILES]
    labels = _spread(ends, LABEL_GAP)
    return [
        Curve(
            centile=centile,
            name=ordinal(centile),
            points=" ".join(
                f"{scale.x(d)},{scale.y(intergrowth.at_centile(centile, d))}" for d in days
            ),
            label_y=label_y,
        )
        for centile, label_y in zip(CURVE_CENTILES, labels, strict=True)
    ]


def _tooltip(measurement: _Measurement) -> str:
    when = measurement.job.created_at.strftime("%Y-%m-%d")
    if measurement.centile is not None:
        where = f"{ordinal(measurement.centile)} centile"
    else:
        where = "outside the standard's 14+0 to 40+0 weeks"
    return (
        f"{weeks_and_days(measurement.days)} weeks: HC {measurement.hc_mm:.1f} mm, {where} "
        f"(job {str(measurement.job.id)[:8]}, submitted {when})"
    )


def _unplaced_reason(fields: dict[str, object]) -> str:
    if fields.get("gestational_age_days") is None:
        return "no gestational age: give the subject a due date, or the job gestational_age_days"
    return "no head was found"


def growth_chart(jobs: list[Job], title: str, highlight: uuid.UUID | None = None) -> GrowthChart:
    """The chart of these head-measurement jobs; ``highlight`` marks one of them."""
    placed: list[_Measurement] = []
    unplaced: list[Unplaced] = []
    for job in jobs:
        fields = growth_fields(job)
        hc = (job.result or {}).get("head_circumference_mm")
        url = url_for("pages.job", job_id=job.id)
        if hc is None or fields["gestational_age_days"] is None:
            unplaced.append(Unplaced(job.id, url, _unplaced_reason(fields)))
            continue
        centile = fields["hc_centile"]
        placed.append(_Measurement(job, int(fields["gestational_age_days"]), float(hc), centile))
    scale = _Scale(
        _extent((m.days for m in placed), DAYS_SHOWN, 7),
        _extent((m.hc_mm for m in placed), HC_SHOWN_MM, HC_STEP_MM),
    )
    first_week, last_week = (int(d // 7) for d in scale.days)
    low_mm, high_mm = (int(v) for v in scale.hc_mm)
    points = [
        Point(
            job_id=m.job.id,
            url=url_for("pages.job", job_id=m.job.id),
            x=scale.x(m.days),
            y=scale.y(m.hc_mm),
            tooltip=_tooltip(m),
            highlighted=m.job.id == highlight,
        )
        for m in placed
    ]
    # The highlighted point last, so it is drawn over the others.
    points.sort(key=lambda point: point.highlighted)
    return GrowthChart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=RIGHT,
        top=TOP,
        bottom=BOTTOM,
        curves=_curves(scale),
        x_ticks=[
            Tick(scale.x(week * 7), str(week)) for week in range(first_week, last_week + 1, 2)
        ],
        y_ticks=[Tick(scale.y(mm), str(mm)) for mm in range(low_mm, high_mm + 1, int(HC_STEP_MM))],
        points=points,
        unplaced=unplaced,
        highlighted=any(point.highlighted for point in points),
    )
