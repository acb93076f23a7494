"""Geometry of the dashboard's server-rendered SVG charts: plain numbers, no Django, no ORM.

The page draws what this module computes, in the template, so it needs no script, font or
file from elsewhere (tests/e2e/test_no_outside_requests.py). Values are placed on a linear
scale whose ticks are drawn with their values, so anyone can read a point back to the
number the site reported (tests/dashboard/test_reported_accuracy.py does exactly that).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# Okabe & Ito's colour-blind-safe palette (yellow left out: too pale on white), and a marker
# shape per series as well, so that no series is told apart by colour alone (WCAG 1.4.1).
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#4D4D4D")
R = 4.0
SHAPES = (
    f"M {-R} 0 A {R} {R} 0 1 0 {R} 0 A {R} {R} 0 1 0 {-R} 0 Z",  # circle
    f"M {-R} {-R} H {R} V {R} H {-R} Z",  # square
    f"M 0 {-R - 1} L {R + 0.5} {R - 0.5} H {-R - 0.5} Z",  # triangle
    f"M 0 {-R - 1} L {R + 1} 0 L 0 {R + 1} L {-R - 1} 0 Z",  # diamond
)

WIDTH, HEIGHT = 520.0, 250.0
LEFT, RIGHT, TOP, BOTTOM = 52.0, 16.0, 14.0, 44.0
MAX_X_LABELS = 12


@dataclass(frozen=True)
class Tick:
    value: float
    label: str
    at: float  # pixel position along its axis


@dataclass(frozen=True)
class Point:
    round_number: int
    value: float
    x: float
    y: float


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    shape: str
    points: tuple[Point, ...]
    # Lines join only consecutive rounds: a round the site did not report breaks its line.
    path: str


@dataclass(frozen=True)
class LineChart:
    width: float
    height: float
    left: float
    top: float
    right: float  # x of the plot's right edge
    bottom: float  # y of the plot's bottom edge
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    series: tuple[Series, ...]
    y_min: float
    y_max: float
    first_round: int
    last_round: int

    @property
    def x_label_at(self) -> float:
        return (self.left + self.right) / 2

    @property
    def y_label_at(self) -> float:
        return (self.top + self.bottom) / 2


def _px(value: float) -> float:
    # Three decimals: a point reads back to its value within 1e-5 on a 0..1 axis.
    return round(value, 3)


def _step(span: float) -> float:
    """A 1, 2 or 5 × 10^k step giving about five intervals over ``span``."""
    raw = span / 5
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power  # pragma: no cover - the loop always returns


def _label(value: float) -> str:
    return f"{value:.10g}"


def style(index: int) -> tuple[str, str]:
    """The colour and marker shape of the ``index``-th series (stable across charts)."""
    # The shape moves on by one more each time the colours come round: 28 distinct pairs.
    return COLOURS[index % len(COLOURS)], SHAPES[(index + 2 * (index // len(COLOURS))) % 4]


def line_chart(
    series: Sequence[tuple[str, Iterable[tuple[int, float]]]],
    *,
    styles: dict[str, tuple[str, str]] | None = None,
) -> LineChart | None:
    """One line per named series of ``(round number, value)`` pairs, on axes that start at
    0 and reach at least 1 (accuracies), widened to any value outside. ``None`` when no
    series has a value. ``styles`` pins a series' colour and shape by name, so that two
    charts of the same sites draw each site alike."""
    data = [(name, sorted(points)) for name, points in series]
    values = [v for _, points in data for _, v in points]
    if not values:
        return None
    rounds = sorted({n for _, points in data for n, _ in points})
    first, last = rounds[0], rounds[-1]
    step = 0.2
    lo, hi = 0.0, 1.0
    if min(values) < lo or max(values) > hi:
        # A site may report its accuracy in per cent, or a negative score: plotted as sent.
        low, high = min(lo, *values), max(hi, *values)
        step = _step(high - low)
        lo, hi = math.floor(low / step) * step, math.ceil(high / step) * step
    left, top = LEFT, TOP
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM

    def x_of(n: int) -> float:
        if last == first:
            return _px((left + right) / 2)
        # Half a slot of room at each end, so the first and last markers clear the axes.
        slot = (right - left) / (last - first + 1)
        return _px(left + slot / 2 + (n - first) * slot)

    def y_of(v: float) -> float:
        return _px(bottom - (v - lo) / (hi - lo) * (bottom - top))

    count = round((hi - lo) / step)
    y_ticks = tuple(
        Tick(value=lo + i * step, label=_label(round(lo + i * step, 10)), at=y_of(lo + i * step))
        for i in range(count + 1)
    )
    every = max(1, math.ceil((last - first + 1) / MAX_X_LABELS))
    x_ticks = tuple(
        Tick(value=n, label=str(n), at=x_of(n))
        for n in range(first, last + 1)
        if (n - first) % every == 0
    )
    drawn = []
    for index, (name, points) in enumerate(data):
        colour, shape = (styles or {}).get(name) or style(index)
        placed = tuple(Point(n, v, x_of(n), y_of(v)) for n, v in points)
        parts = []
        for i, p in enumerate(placed):
            joined = i > 0 and placed[i - 1].round_number == p.round_number - 1
            parts.append(f"{'L' if joined else 'M'} {p.x:g} {p.y:g}")
        drawn.append(Series(name, colour, shape, placed, " ".join(parts)))
    return LineChart(
        width=WIDTH,
        height=HEIGHT,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        series=tuple(drawn),
        y_min=lo,
        y_max=hi,
        first_round=first,
        last_round=last,
    )


class Reported(Protocol):
    """One site's reported accuracies for one round (``dashboard.selectors.SiteAccuracy``)."""

    @property
    def round_number(self) -> int: ...
    @property
    def site(self) -> str: ...
    @property
    def training(self) -> float | None: ...
    @property
    def evaluation(self) -> float | None: ...


@dataclass(frozen=True)
class LegendEntry:
    name: str
    colour: str
    shape: str


@dataclass(frozen=True)
class AccuracyCharts:
    """A run's two accuracy charts, one line per site: the accuracy each site sent with its
    model update, and the one in its evaluation reply; one legend for both."""

    legend: tuple[LegendEntry, ...]
    training: LineChart | None
    evaluation: LineChart | None


def accuracy_charts(rows: Iterable[Reported]) -> AccuracyCharts:
    """The charts of one run's reported accuracies, values exactly as reported."""
    rows = list(rows)
    sites = sorted({r.site for r in rows})
    styles = {name: style(i) for i, name in enumerate(sites)}

    def chart(metric: str) -> LineChart | None:
        return line_chart(
            [
                (
                    name,
                    [
                        (r.round_number, value)
                        for r in rows
                        if r.site == name and (value := getattr(r, metric)) is not None
                    ],
                )
                for name in sites
            ],
            styles=styles,
        )

    return AccuracyCharts(
        legend=tuple(LegendEntry(name, *styles[name]) for name in sites),
        training=chart("training"),
        evaluation=chart("evaluation"),
    )
