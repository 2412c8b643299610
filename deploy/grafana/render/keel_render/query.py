"""Every panel's PromQL through Prometheus's HTTP API (``/api/v1/query_range``), with Grafana's
template variables replaced the way Grafana replaces them, and series named by each target's
``legendFormat``. The answers are plain pydantic data, so a picture can be redrawn from a saved
run without the stack."""

from __future__ import annotations

import json
import math
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass

from pydantic import BaseModel, Field

from keel_render.dashboard import Dashboard, Panel, Target

_LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


class Series(BaseModel):
    name: str
    # (unix seconds, value); None where Prometheus had no value or NaN (a gap in the line).
    points: list[tuple[float, float | None]]

    def values(self) -> list[float]:
        return [v for _, v in self.points if v is not None]


class PanelData(BaseModel):
    panel_id: int
    series: list[Series] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


class Snapshot(BaseModel):
    """What one run evaluated: the time range and every panel's series."""

    start: float
    end: float
    step_s: float
    panels: dict[int, PanelData]
    notes: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class TimeRange:
    start: float
    end: float
    step_s: float
    scrape_interval_s: float

    def variables(self) -> dict[str, str]:
        """Grafana's built-ins: ``$__rate_interval`` is max(interval + scrape, 4 x scrape)."""
        rate = max(self.step_s + self.scrape_interval_s, 4 * self.scrape_interval_s)
        return {
            "$__rate_interval": f"{int(rate)}s",
            "$__interval": f"{int(self.step_s)}s",
            "$__range": f"{int(self.end - self.start)}s",
        }


def expand(expr: str, variables: dict[str, str]) -> str:
    # Longest names first, so $__range is not replaced inside $__range_s.
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(name, variables[name])
    return expr


def legend(target: Target, labels: dict[str, str]) -> str:
    if not target.legend_format:
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return labels.get("__name__", "") + "{" + inner + "}" if inner else target.expr
    name = _LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), target.legend_format)
    return " ".join(name.split()) or target.ref_id


def _number(raw: str) -> float | None:
    value = float(raw)
    return None if math.isnan(value) or math.isinf(value) else value


class PrometheusClient:
    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        self._base = base_url.rstrip("/")
        self._timeout_s = timeout_s

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, object]:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        with urllib.request.urlopen(self._base + path + query, timeout=self._timeout_s) as reply:
            body: dict[str, object] = json.loads(reply.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body.get('error', body)}")
        return body

    def query_range(self, expr: str, span: TimeRange) -> list[dict[str, object]]:
        params = {
            "query": expr,
            "start": f"{span.start:.3f}",
            "end": f"{span.end:.3f}",
            "step": f"{span.step_s:g}",
        }
        data = self.get("/api/v1/query_range", params)["data"]
        assert isinstance(data, dict)
        result: list[dict[str, object]] = data["result"]
        return result


def evaluate_panel(client: PrometheusClient, panel: Panel, span: TimeRange) -> PanelData:
    data = PanelData(panel_id=panel.id)
    for target in panel.targets:
        if target.hide:
            continue
        expr = expand(target.expr, span.variables())
        try:
            matrix = client.query_range(expr, span)
        except Exception as exc:  # noqa: BLE001 - a bad query is drawn as the panel's error
            data.errors.append(f"{target.ref_id}: {exc}")
            continue
        for item in matrix:
            labels = item["metric"]
            raw = item["values"]
            assert isinstance(labels, dict)
            assert isinstance(raw, list)
            points = [(float(t), _number(v)) for t, v in raw]
            data.series.append(Series(name=legend(target, labels), points=points))
    return data


def evaluate(client: PrometheusClient, dashboard: Dashboard, span: TimeRange) -> Snapshot:
    panels = {p.id: evaluate_panel(client, p, span) for p in dashboard.panels if not p.is_row}
    return Snapshot(start=span.start, end=span.end, step_s=span.step_s, panels=panels)
