"""Inline SVG for the panel types the dashboard uses: time series, stat (sparkline), and state
timeline. Pure functions of the data and a pixel box, so they are easy to test and to redraw."""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from keel_render.query import Series
from keel_render.units import format_value

# Grafana's classic palette, in its order, and its named colours.
PALETTE = (
    "#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
    "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477",
)  # fmt: skip
NAMED = {
    "green": "#73BF69",
    "red": "#F2495C",
    "orange": "#FF9830",
    "yellow": "#FADE2A",
    "blue": "#5794F2",
    "purple": "#B877D9",
    "text": "#CCCCDC",
    "transparent": "transparent",
}
AXIS_TEXT = "rgba(204,204,220,0.65)"
GRID_LINE = "rgba(204,204,220,0.08)"
FONT_PX = 11


def color(name: str) -> str:
    return NAMED.get(name, name)


def series_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def text_width(text: str, font_px: float = FONT_PX) -> float:
    """A width estimate for layout (no font metrics in a script): ~0.58 em a character."""
    return len(text) * font_px * 0.58


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering [lo, hi], about ``count`` intervals."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def time_ticks(start: float, end: float, width_px: float) -> list[float]:
    """Clock-aligned ticks about every 90 px."""
    wanted = max(2, int(width_px // 90))
    span = end - start
    step = next(
        (s for s in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600) if span / s <= wanted),
        7200,
    )
    first = math.ceil(start / step) * step
    return [first + i * step for i in range(int((end - first) // step) + 1)]


def clock(ts: float, with_seconds: bool) -> str:
    return time.strftime("%H:%M:%S" if with_seconds else "%H:%M", time.localtime(ts))


@dataclass(frozen=True)
class Box:
    width: float
    height: float


@dataclass(frozen=True)
class Axis:
    unit: str
    decimals: int | None = None
    min: float | None = None
    max: float | None = None


def _y_range(series: Sequence[Series], axis: Axis) -> tuple[float, float]:
    values = [v for s in series for v in s.values()]
    lo = min([*values, 0.0]) if axis.min is None else axis.min
    hi = max(values, default=1.0) if axis.max is None else axis.max
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    return lo, hi


def _segments(
    points: Sequence[tuple[float, float | None]], gap_s: float
) -> list[list[tuple[float, float]]]:
    """Runs of consecutive values; a missing value or a jump in time starts a new run."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    last_t: float | None = None
    for t, v in points:
        if v is None or (last_t is not None and t - last_t > gap_s):
            if current:
                runs.append(current)
            current = []
        if v is not None:
            current.append((t, v))
        last_t = t
    if current:
        runs.append(current)
    return runs


def timeseries(
    series: Sequence[Series],
    start: float,
    end: float,
    step_s: float,
    box: Box,
    axis: Axis,
    uid: str = "ts",
) -> str:
    """Lines with a soft gradient fill, gaps where a series has no value; ``uid`` keeps the
    gradients of several charts on one page apart."""
    lo, hi = _y_range(series, axis)
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1]) if axis.max is None else hi
    labels = [format_value(t, axis.unit, axis.decimals) for t in ticks]
    left = max(text_width(label) for label in labels) + 10
    bottom = 18.0
    plot_w, plot_h = box.width - left - 6, box.height - bottom - 6

    def px(t: float) -> float:
        return left + (t - start) / (end - start) * plot_w

    def py(v: float) -> float:
        return 6 + (1 - (v - lo) / (hi - lo)) * plot_h

    parts = [_svg_open(box)]
    for tick, label in zip(ticks, labels, strict=True):
        y = py(tick)
        parts.append(_line(left, y, left + plot_w, y, GRID_LINE))
        parts.append(_text(left - 6, y + 4, label, anchor="end"))
    seconds = end - start < 1200
    for t in time_ticks(start, end, plot_w):
        x = px(t)
        label = clock(t, seconds)
        half = text_width(label) / 2
        if x - half < left or x + half > box.width:
            continue  # a label that would run into the y axis or off the edge
        parts.append(_line(x, 6, x, 6 + plot_h, GRID_LINE))
        parts.append(_text(x, box.height - 4, label, anchor="middle"))
    for index, s in enumerate(series):
        stroke = series_color(index)
        gradient = f"{uid}-g{index}"
        parts.append(
            f'<defs><linearGradient id="{gradient}" x1="0" y1="0" x2="0" y2="1">'
            f'<stop offset="0" stop-color="{stroke}" stop-opacity="0.22"/>'
            f'<stop offset="1" stop-color="{stroke}" stop-opacity="0.02"/></linearGradient></defs>'
        )
        base = py(max(lo, min(0.0, hi)))
        for run in _segments(s.points, gap_s=step_s * 2.5):
            coords = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in run)
            if len(run) == 1:
                x, y = px(run[0][0]), py(run[0][1])
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{stroke}"/>')
                continue
            area = f"{px(run[0][0]):.1f},{base:.1f} {coords} {px(run[-1][0]):.1f},{base:.1f}"
            parts.append(f'<polygon points="{area}" fill="url(#{gradient})" stroke="none"/>')
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{stroke}" '
                'stroke-width="1.5" stroke-linejoin="round"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def sparkline(series: Series, start: float, end: float, box: Box, stroke: str) -> str:
    values = series.values()
    if len(values) < 2:
        return ""
    lo, hi = min(values), max(values)
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    points = [(t, v) for t, v in series.points if v is not None]

    def px(t: float) -> float:
        return (t - start) / (end - start) * box.width

    def py(v: float) -> float:
        return box.height - (v - lo) / (hi - lo) * box.height * 0.9

    coords = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in points)
    area = f"{px(points[0][0]):.1f},{box.height} {coords} {px(points[-1][0]):.1f},{box.height}"
    return (
        _svg_open(box)
        + f'<polygon points="{area}" fill="{stroke}" fill-opacity="0.18"/>'
        + f'<polyline points="{coords}" fill="none" stroke="{stroke}" stroke-opacity="0.7" '
        'stroke-width="1.5"/></svg>'
    )


def state_timeline(
    series: Sequence[Series],
    mappings: dict[str, tuple[str, str]],
    start: float,
    end: float,
    step_s: float,
    box: Box,
) -> str:
    """One band per series; runs of one value merged and coloured by the value mappings
    (value -> (text, colour))."""
    if not series:
        return ""
    left = max(text_width(s.name) for s in series) + 14
    bottom = 18.0
    plot_w = box.width - left - 6
    band = (box.height - bottom - 6) / len(series)

    def px(t: float) -> float:
        return left + (t - start) / (end - start) * plot_w

    parts = [_svg_open(box)]
    for row, s in enumerate(series):
        top = 6 + row * band
        parts.append(_text(left - 8, top + band / 2 + 4, s.name, anchor="end"))
        for t0, t1, value in _runs(s.points, step_s, end):
            key = _value_key(value)
            text, fill = mappings.get(key, (key, series_color(row)))
            x0, x1 = px(t0), px(t1)
            parts.append(
                f'<rect x="{x0:.1f}" y="{top + band * 0.05:.1f}" width="{max(x1 - x0, 1):.1f}" '
                f'height="{band * 0.9:.1f}" fill="{color(fill)}" fill-opacity="0.75" rx="1"/>'
            )
            if x1 - x0 > text_width(text) + 8:
                parts.append(
                    _text((x0 + x1) / 2, top + band / 2 + 4, text, anchor="middle", fill="#111217")
                )
    seconds = end - start < 1200
    for t in time_ticks(start, end, plot_w):
        label = clock(t, seconds)
        if px(t) - text_width(label) / 2 >= left:
            parts.append(_text(px(t), box.height - 4, label, anchor="middle"))
    parts.append("</svg>")
    return "".join(parts)


def _runs(
    points: Sequence[tuple[float, float | None]], step_s: float, end: float
) -> list[tuple[float, float, float]]:
    runs: list[tuple[float, float, float]] = []
    for t, v in points:
        if v is None:
            continue
        if runs and runs[-1][2] == v and t - runs[-1][1] <= step_s * 2.5:
            runs[-1] = (runs[-1][0], t + step_s, v)
        else:
            runs.append((t, t + step_s, v))
    return [(t0, min(t1, end), v) for t0, t1, v in runs]


def _value_key(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _svg_open(box: Box) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{box.width:.0f}" '
        f'height="{box.height:.0f}" viewBox="0 0 {box.width:.0f} {box.height:.0f}">'
    )


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" '
        'stroke-width="1"/>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", fill: str = AXIS_TEXT) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}" '
        f'font-size="{FONT_PX}">{esc(text)}</text>'
    )
