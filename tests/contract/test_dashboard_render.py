"""deploy/grafana/render draws the dashboard for the README: check it draws what the data says
(every panel of the real dashboard JSON, at its grid position, with its unit), and that Grafana's
template variables and legends are expanded the way Grafana expands them."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "grafana" / "render"))

from keel_render import charts  # noqa: E402
from keel_render.dashboard import Dashboard, Target, load_dashboard  # noqa: E402
from keel_render.page import Layout, render_page  # noqa: E402
from keel_render.query import (  # noqa: E402
    PanelData,
    Series,
    Snapshot,
    TimeRange,
    expand,
    legend,
)
from keel_render.units import format_value  # noqa: E402

DASHBOARD = REPO / "deploy" / "grafana" / "keel-dashboard.json"
START, STEP = 1_700_000_000.0, 5.0


def ramp(name: str, values: list[float | None]) -> Series:
    return Series(name=name, points=[(START + i * STEP, v) for i, v in enumerate(values)])


def snapshot_for(dashboard: Dashboard, empty: frozenset[int] = frozenset()) -> Snapshot:
    panels = {
        p.id: PanelData(
            panel_id=p.id,
            series=[] if p.id in empty else [ramp(f"s{p.id}", [0.1, 0.5, 0.9, 0.7])],
        )
        for p in dashboard.panels
        if not p.is_row
    }
    return Snapshot(start=START, end=START + 3 * STEP, step_s=STEP, panels=panels)


def test_grafana_variables_are_expanded_like_grafana() -> None:
    span = TimeRange(start=0, end=600, step_s=5, scrape_interval_s=5)
    # $__rate_interval = max(interval + scrape, 4 x scrape)
    assert expand("rate(x[$__rate_interval])", span.variables()) == "rate(x[20s])"
    wide = TimeRange(start=0, end=600, step_s=60, scrape_interval_s=15)
    assert expand("rate(x[$__rate_interval]) $__range", wide.variables()) == "rate(x[75s]) 600s"


def test_legends_fill_labels_and_drop_missing_ones() -> None:
    target = Target.model_validate({"expr": "x", "legendFormat": "{{method}} {{code}}"})
    assert legend(target, {"method": "Get", "code": "NOT_FOUND"}) == "Get NOT_FOUND"
    assert legend(target, {"method": "Get"}) == "Get"
    bare = Target.model_validate({"expr": "up"})
    assert legend(bare, {"__name__": "up", "job": "keel"}) == 'up{job="keel"}'


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.953, "percentunit", "95.3%"),
        (0.004, "s", "4 ms"),
        (2.5, "s", "2.5 s"),
        (0.25, "ops", "0.25 ops/s"),
        (1500, "short", "1.5 K"),
        (0.0012, "currencyUSD", "$0.0012"),
    ],
)
def test_units_read_as_in_grafana(value: float, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


def test_ticks_are_round_and_cover_the_data() -> None:
    ticks = charts.nice_ticks(0, 0.93)
    assert ticks[0] <= 0
    assert ticks[-1] >= 0.93
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert steps == {0.25}


def test_a_gap_in_a_series_breaks_its_line() -> None:
    whole = charts.timeseries(
        [ramp("a", [1, 2, 3, 4])], START, START + 15, STEP, charts.Box(300, 120), charts.Axis("s")
    )
    broken = charts.timeseries(
        [ramp("a", [1, 2, None, 4, 5])],
        START,
        START + 20,
        STEP,
        charts.Box(300, 120),
        charts.Axis("s"),
    )
    assert whole.count("<polyline") == 1
    assert broken.count("<polyline") == 2


def test_every_panel_is_drawn_at_its_grid_position() -> None:
    dashboard = load_dashboard(DASHBOARD)
    page = render_page(dashboard, snapshot_for(dashboard), 1600, "test")
    layout = Layout(1600)
    for panel in dashboard.panels:
        x, y, w, h = layout.rect(panel)
        assert f"left:{x:.1f}px;top:{y:.1f}px;width:{w:.1f}px;height:{h:.1f}px" in page
        assert panel.title in page
    assert "No data" not in page
    drawn = len(re.findall(r"<polyline", page))
    timeseries = [p for p in dashboard.panels if p.type == "timeseries"]
    assert drawn >= len(timeseries)
    # The stat panel shows its last value in its unit, coloured by its thresholds.
    assert "70%" in page


def test_a_panel_without_data_says_so() -> None:
    dashboard = load_dashboard(DASHBOARD)
    first = next(p for p in dashboard.panels if p.type == "timeseries")
    page = render_page(
        dashboard, snapshot_for(dashboard, empty=frozenset({first.id})), 1600, "test"
    )
    assert page.count("No data") == 1
