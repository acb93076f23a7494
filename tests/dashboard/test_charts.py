"""The dashboard's chart geometry (dashboard.charts): every point reads back to its value
through the drawn ticks, whatever range the sites report in, and gaps stay gaps."""

from __future__ import annotations

import re

import pytest

from dashboard.charts import COLOURS, line_chart, style


def _read_back(chart):
    (v0, p0), (v1, p1) = (
        (chart.y_ticks[0].value, chart.y_ticks[0].at),
        (chart.y_ticks[-1].value, chart.y_ticks[-1].at),
    )
    return {
        (s.name, p.round_number): v0 + (p.y - p0) * (v1 - v0) / (p1 - p0)
        for s in chart.series
        for p in s.points
    }


@pytest.mark.parametrize(
    ("values", "low", "high"),
    [
        ([0.0, 0.5, 1.0], 0.0, 1.0),  # the boundaries of an accuracy are on the axis
        ([0.31, 0.999], 0.0, 1.0),
        ([72.5, 91.25, 100.0], 0.0, 100.0),  # a site reporting per cent: drawn as sent
        ([-0.25, 0.4], -0.5, 1.0),  # a score below zero widens the axis downwards
    ],
)
def test_points_read_back_to_the_reported_values(values, low, high):
    chart = line_chart([("a", list(enumerate(values, start=1)))])

    assert (chart.y_min, chart.y_max) == pytest.approx((low, high))
    assert chart.y_ticks[0].value == pytest.approx(low)
    assert chart.y_ticks[-1].value == pytest.approx(high)
    read = _read_back(chart)
    for n, value in enumerate(values, start=1):
        assert read[("a", n)] == pytest.approx(value, abs=1e-5)


def test_a_round_a_site_did_not_report_breaks_its_line():
    chart = line_chart([("a", [(1, 0.5), (2, 0.6), (4, 0.7)]), ("b", [(3, 0.2)])])

    a, b = chart.series
    assert [m[0] for m in re.findall(r"([ML]) \S+ \S+", a.path)] == ["M", "L", "M"]
    assert b.path.startswith("M") and "L" not in b.path
    assert [t.value for t in chart.x_ticks] == [1, 2, 3, 4]


def test_no_value_no_chart():
    assert line_chart([("a", [])]) is None


def test_series_styles_differ_for_28_sites():
    styles = [style(i) for i in range(28)]

    assert len(set(styles)) == 28
    assert {c for c, _ in styles} == set(COLOURS)
