"""One self-contained HTML page in Grafana's dark theme: the dashboard's rows and panels at
their gridPos, each panel's chart as inline SVG. No scripts, fonts or files from anywhere."""

from __future__ import annotations

import time
from dataclasses import dataclass

from keel_render import charts
from keel_render.charts import Axis, Box, esc
from keel_render.dashboard import GAP_PX, GRID_COLUMNS, ROW_PX, Dashboard, Panel
from keel_render.query import PanelData, Snapshot
from keel_render.units import format_value

PAGE_PAD = 16
HEADER_PX = 64
TITLE_PX = 32
LEGEND_LINE_PX = 18
LEGEND_MAX_LINES = 3

CSS = """
* { box-sizing: border-box; }
body { margin: 0; background: #111217; color: #ccccdc;
  font: 13px/1.4 Inter, "Helvetica Neue", Arial, "DejaVu Sans", sans-serif; }
header { height: 64px; padding: 0 16px; display: flex; align-items: center; gap: 12px;
  border-bottom: 1px solid rgba(204,204,220,0.12); background: #181b1f; }
header .crumb { color: #9fa7b3; } header .title { font-size: 18px; font-weight: 500; }
header .range { margin-left: auto; border: 1px solid rgba(204,204,220,0.2); border-radius: 2px;
  padding: 4px 10px; color: #ccccdc; }
header .source { color: #9fa7b3; font-size: 12px; }
.grid { position: relative; margin: 16px; }
.row { position: absolute; font-size: 15px; font-weight: 500; display: flex;
  align-items: center; gap: 8px; color: #ccccdc; }
.row .chev { color: #9fa7b3; font-size: 12px; }
.panel { position: absolute; background: #181b1f; border: 1px solid rgba(204,204,220,0.12);
  border-radius: 2px; overflow: hidden; }
.panel h3 { margin: 0; height: 32px; padding: 0 8px; display: flex; align-items: center;
  font-size: 14px; font-weight: 500; color: #ccccdc; white-space: nowrap; overflow: hidden; }
.panel .body { position: absolute; left: 8px; right: 8px; top: 32px; bottom: 8px; }
.legend { position: absolute; left: 0; right: 0; bottom: 0; display: flex; flex-wrap: wrap;
  gap: 0 14px; font-size: 12px; line-height: 18px; overflow: hidden; color: #ccccdc; }
.legend i { display: inline-block; width: 14px; height: 4px; border-radius: 2px;
  margin-right: 6px; vertical-align: middle; }
.legend i.sq { width: 10px; height: 10px; }
.nodata { position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; color: #9fa7b3; font-size: 16px; }
.error { color: #F2495C; font-size: 12px; }
.stat { position: absolute; inset: 0; border-radius: 2px; }
.stat .value { position: absolute; left: 0; right: 0; top: 8%; text-align: center;
  font-weight: 500; color: #fff; }
.stat .spark { position: absolute; left: 0; right: 0; bottom: 0; }
"""


@dataclass(frozen=True)
class Layout:
    """Grafana's grid in pixels for a page ``width`` wide."""

    width: int

    @property
    def column(self) -> float:
        inner = self.width - 2 * PAGE_PAD
        return (inner - (GRID_COLUMNS - 1) * GAP_PX) / GRID_COLUMNS

    def rect(self, panel: Panel) -> tuple[float, float, float, float]:
        g = panel.grid
        x = g.x * (self.column + GAP_PX)
        y = g.y * (ROW_PX + GAP_PX)
        w = g.w * self.column + (g.w - 1) * GAP_PX
        h = g.h * ROW_PX + (g.h - 1) * GAP_PX
        return x, y, w, h

    def grid_height(self, dashboard: Dashboard) -> float:
        return dashboard.height_units() * (ROW_PX + GAP_PX)

    def page_height(self, dashboard: Dashboard) -> int:
        return int(HEADER_PX + 2 * PAGE_PAD + self.grid_height(dashboard))


def render_page(dashboard: Dashboard, snapshot: Snapshot, width: int, caption: str) -> str:
    layout = Layout(width)
    minutes = round((snapshot.end - snapshot.start) / 60)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(snapshot.end))
    body = [
        "<header>",
        '<span class="crumb">Dashboards /</span>',
        f'<span class="title">{esc(dashboard.title)}</span>',
        f'<span class="source">{esc(caption)}</span>',
        f'<span class="range">Last {minutes} minutes · {esc(when)}</span>',
        "</header>",
        f'<div class="grid" style="height:{layout.grid_height(dashboard):.0f}px">',
    ]
    for panel in dashboard.panels:
        data = snapshot.panels.get(panel.id, PanelData(panel_id=panel.id))
        body.append(render_panel(panel, data, snapshot, layout))
    body.append("</div>")
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{esc(dashboard.title)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>"
    )


def render_panel(panel: Panel, data: PanelData, snapshot: Snapshot, layout: Layout) -> str:
    x, y, w, h = layout.rect(panel)
    style = f"left:{x:.1f}px;top:{y:.1f}px;width:{w:.1f}px;height:{h:.1f}px"
    if panel.is_row:
        return (
            f'<div class="row" style="{style}"><span class="chev">&#9660;</span>'
            f"{esc(panel.title)}</div>"
        )
    inner = Box(w - 16, h - TITLE_PX - 8)
    if data.errors:
        content = "".join(f'<div class="error">{esc(e)}</div>' for e in data.errors)
    elif not data.series:
        content = '<div class="nodata">No data</div>'
    elif panel.type == "stat":
        content = _stat(panel, data, snapshot, inner)
    elif panel.type == "state-timeline":
        content = _state_timeline(panel, data, snapshot, inner)
    else:
        content = _timeseries(panel, data, snapshot, inner)
    return (
        f'<div class="panel" style="{style}"><h3>{esc(panel.title)}</h3>'
        f'<div class="body">{content}</div></div>'
    )


def _legend_lines(names: list[str], width: float) -> int:
    lines, used = 1, 0.0
    for name in names:
        item = 20 + charts.text_width(name, 12) + 14
        if used and used + item > width:
            lines, used = lines + 1, 0.0
        used += item
    return min(lines, LEGEND_MAX_LINES)


def _legend(items: list[tuple[str, str]], height: float, square: bool = False) -> str:
    """Grafana scrolls a legend that does not fit; a picture cuts it at ``height``."""
    swatch = "sq" if square else ""
    return (
        f'<div class="legend" style="max-height:{height:.0f}px">'
        + "".join(
            f'<span><i class="{swatch}" style="background:{c}"></i>{esc(n)}</span>'
            for n, c in items
        )
        + "</div>"
    )


def _axis(panel: Panel) -> Axis:
    d = panel.field_config.defaults
    return Axis(unit=d.unit, decimals=d.decimals, min=d.min, max=d.max)


def _timeseries(panel: Panel, data: PanelData, snapshot: Snapshot, box: Box) -> str:
    names = [s.name for s in data.series]
    legend_px = _legend_lines(names, box.width) * LEGEND_LINE_PX + 4
    chart = charts.timeseries(
        data.series,
        snapshot.start,
        snapshot.end,
        snapshot.step_s,
        Box(box.width, box.height - legend_px),
        _axis(panel),
        uid=f"p{panel.id}",
    )
    colours = [charts.series_color(i) for i in range(len(names))]
    return chart + _legend(list(zip(names, colours, strict=True)), height=legend_px - 4)


def _threshold_colour(panel: Panel, value: float) -> str:
    chosen = "green"
    for step in panel.field_config.defaults.thresholds.steps:
        if step.value is None or value >= step.value:
            chosen = step.color
    return charts.color(chosen)


def _stat(panel: Panel, data: PanelData, snapshot: Snapshot, box: Box) -> str:
    series = data.series[0]
    values = series.values()
    if not values:
        return '<div class="nodata">No data</div>'
    value = values[-1]  # reduceOptions: lastNotNull
    colour = _threshold_colour(panel, value)
    d = panel.field_config.defaults
    text = format_value(value, d.unit, d.decimals)
    font = min(box.height * 0.42, box.width / max(len(text), 3) * 1.5)
    spark = charts.sparkline(
        series, snapshot.start, snapshot.end, Box(box.width, box.height * 0.45), "#ffffff"
    )
    background = f"linear-gradient(120deg, {colour}, {colour}cc)"
    return (
        f'<div class="stat" style="background:{background}">'
        f'<div class="value" style="font-size:{font:.0f}px">{esc(text)}</div>'
        f'<div class="spark">{spark}</div></div>'
    )


def _state_timeline(panel: Panel, data: PanelData, snapshot: Snapshot, box: Box) -> str:
    mappings = {
        key: (m.text or key, charts.color(m.color or "text"))
        for key, m in panel.field_config.defaults.mappings.items()
    }
    legend_px = LEGEND_LINE_PX + 4
    chart = charts.state_timeline(
        data.series,
        mappings,
        snapshot.start,
        snapshot.end,
        snapshot.step_s,
        Box(box.width, box.height - legend_px),
    )
    items = [(text, colour) for text, colour in mappings.values()]
    return chart + _legend(items, height=LEGEND_LINE_PX, square=True)
