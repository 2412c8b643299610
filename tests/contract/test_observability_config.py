"""deploy/prometheus and deploy/grafana cannot run here (no Prometheus, no promtool), so check
them against the code: every keel_* series an alert or a dashboard panel queries must be one the
services really export, with the labels the selectors name, and every service must be scraped."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from keel_cli.stack import SERVICES
from keel_core.bus.metrics import BusMetrics
from keel_core.grpc.interceptors import GrpcMetrics

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "keel-dashboard.json"

# Series names each metric type exposes in the text format, by suffix.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "info": ("_info",),
}
# Labels Prometheus adds at scrape time (prometheus.yml's target labels included).
TARGET_LABELS = {"job", "instance", "service"}
SELECTOR = re.compile(r"\b(keel_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def metric_classes() -> Iterator[type[Any]]:
    """Every service's metrics class(es) plus the ones each runtime registers for it."""
    yield BusMetrics
    yield GrpcMetrics
    for spec in SERVICES:
        module = importlib.import_module(f"{spec.module}.metrics")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and cls.__name__.endswith("Metrics"):
                yield cls


def wrappers(instance: object) -> Iterator[MetricWrapperBase]:
    """The metrics an object holds, also through parts it composes (e.g. BreakerMetrics)."""
    for value in vars(instance).values():
        if isinstance(value, MetricWrapperBase):
            yield value
        elif type(value).__name__.endswith("Metrics"):
            yield from wrappers(value)


def exported() -> dict[str, set[str]]:
    """Series name -> label names, from the metrics classes on a fresh registry each."""
    series: dict[str, set[str]] = {}
    for cls in metric_classes():
        registry = CollectorRegistry()
        instance = cls(registry)
        labels_of: dict[str, set[str]] = {}
        for value in wrappers(instance):
            # The label names are not in collect() until a child exists; read them here.
            name = next(iter(value.describe())).name
            labels_of[name] = set(value._labelnames)
        for family in registry.collect():
            labels = labels_of.get(family.name, set())
            for suffix in SUFFIXES[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                series[family.name + suffix] = labels | extra
    return series


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    return panels


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p.get("targets", [])]


def all_exprs() -> list[tuple[str, str]]:
    rules = [(f"alert {r['alert']}", str(r["expr"])) for r in alert_rules()]
    return rules + [("dashboard", expr) for expr in dashboard_exprs()]


def test_the_seeds_five_metrics_and_the_plumbing_ones_are_exported() -> None:
    names = exported()
    for name in (
        "keel_agent_sessions_total",  # task completion rate (by outcome)
        "keel_agent_iterations_to_completion_bucket",
        "keel_agent_tool_results_total",  # tool error rate per tool (by tool, status)
        "keel_agent_context_window_utilisation_bucket",
        "keel_agent_session_tokens_bucket",
        "keel_agent_session_cost_usd_bucket",
        "keel_grpc_server_handling_seconds_bucket",
        "keel_bus_consumer_lag",
        "keel_tool_gateway_breaker_state",
        "keel_policy_decisions_total",
    ):
        assert name in names, name
    assert {"tool", "status"} <= names["keel_agent_tool_results_total"]
    assert "decision" in names["keel_policy_decisions_total"]


def test_every_service_is_scraped_at_its_default_metrics_port() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    scraped: dict[str, str] = {}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                scraped[static["labels"]["service"]] = target
    for spec in SERVICES:
        default = importlib.import_module(f"{spec.module}.config").Settings.model_fields
        assert default["metrics_port"].default == spec.metrics_port
        assert scraped[spec.name] == f"127.0.0.1:{spec.metrics_port}"
    assert len(scraped) == len(SERVICES)


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    exprs = " ".join(str(rule["expr"]) for rule in rules)
    # The three, and the two the metrics make possible.
    for metric in (
        'keel_agent_sessions_total{outcome="completed"}',
        'keel_agent_tool_results_total{status="error"}',
        "keel_bus_consumer_lag",
        "keel_tool_gateway_breaker_state",
        'keel_policy_reloads_total{outcome="error"}',
    ):
        assert metric in exprs, metric


def test_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "keel-overview"
    assert dashboard["title"]
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
    queried = " ".join(dashboard_exprs())
    for metric in (
        "keel_agent_sessions_total",
        "keel_agent_iterations_to_completion_bucket",
        "keel_agent_tool_results_total",
        "keel_agent_context_window_utilisation_bucket",
        "keel_agent_session_tokens_bucket",
        "keel_agent_session_cost_usd_bucket",
        "keel_grpc_server_handling_seconds_bucket",
        "keel_bus_consumer_lag",
        "keel_tool_gateway_breaker_state",
        'keel_policy_decisions_total{decision="deny"}',
    ):
        assert metric in queried, metric


def problems(expr: str, names: dict[str, set[str]]) -> list[str]:
    """What is wrong with one PromQL expression against the exported series."""
    used = set(re.findall(r"\bkeel_[a-z0-9_]+", expr))
    if not used and not re.search(r"\bup\{", expr):
        return [f"no keel_* metric in {expr}"]
    found = [f"not exported: {name}" for name in sorted(used - names.keys())]
    for metric, matchers in SELECTOR.findall(expr):
        missing = set(MATCHER.findall(matchers)) - names.get(metric, set()) - TARGET_LABELS
        found += [f"{metric} has no label {label}" for label in sorted(missing)]
    # A grouping label must exist on some queried series, or come from the scrape target.
    known = set().union(*(names.get(m, set()) for m in used)) | TARGET_LABELS
    for grouping in GROUPING.findall(expr):
        wanted = {label.strip() for label in grouping.split(",") if label.strip()}
        found += [f"grouping by unknown label {label}" for label in sorted(wanted - known)]
    return found


@pytest.mark.parametrize(("where", "expr"), all_exprs())
def test_every_queried_series_is_exported_with_its_labels(where: str, expr: str) -> None:
    assert problems(expr, exported()) == [], where


def test_the_check_catches_misspelt_metrics_and_labels() -> None:
    names = exported()
    assert problems("sum(rate(keel_agent_sessions[5m]))", names) == [
        "not exported: keel_agent_sessions"  # a counter is exported with _total
    ]
    assert problems('keel_agent_tool_results_total{state="error"}', names) == [
        "keel_agent_tool_results_total has no label state"
    ]
    assert problems("sum by (le, tool) (rate(keel_agent_session_tokens_bucket[5m]))", names) == [
        "grouping by unknown label tool"
    ]
    assert problems("sum(rate(keel_agent_session_tokens_sum[5m]))", names) == []
    assert problems("vector(1)", names) == ["no keel_* metric in vector(1)"]


async def test_the_agent_loop_feeds_context_tokens_and_cost_metrics() -> None:
    """The series the dashboard shows for the seed's metrics get samples from a real loop run."""
    from keel_agent_loop.domain import AgentLoop, AgentState, LoopConfig, ToolOutcome, Usage
    from keel_agent_loop.metrics import AgentMetrics
    from keel_agent_loop.testing import (
        FakeMemory,
        FakeTools,
        RecordingSink,
        ScriptedLLM,
        answer,
        call_tools,
    )

    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    spent = Usage(prompt_tokens=300, completion_tokens=20, cost_usd=0.002)
    llm = ScriptedLLM([call_tools(("calculator", {}), usage=spent), answer("42", usage=spent)])
    tools = FakeTools({"calculator": ToolOutcome(status="error", error="boom")})
    config = LoopConfig("system", context_window_tokens=1000, reply_reserve_tokens=100)
    loop = AgentLoop(llm, tools, FakeMemory(), RecordingSink(), config, metrics)
    state = await loop.run(
        AgentState(session_id="s1", goal="what is 6*7?", agent_id="a1", agent_profile="analyst")
    )
    metrics.session_finished(state)

    value = registry.get_sample_value
    assert value("keel_agent_context_window_utilisation_count") == 2
    ratio = value("keel_agent_context_window_utilisation_sum") or 0.0
    assert 0 < ratio < 2  # two calls, each a fraction of the 1000-token window
    assert value("keel_agent_session_tokens_sum", {"outcome": "completed"}) == 640
    assert value("keel_agent_session_cost_usd_sum", {"outcome": "completed"}) == pytest.approx(
        0.004
    )
    assert value("keel_agent_sessions_total", {"outcome": "completed", "reason": ""}) == 1
    assert value("keel_agent_tool_results_total", {"tool": "calculator", "status": "error"}) == 1
