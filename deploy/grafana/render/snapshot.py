"""The README's dashboard picture, from real data: start Kafka and the six services on free
ports (as `make run` does), drive a few minutes of mixed traffic, scrape them with a real
Prometheus running deploy/prometheus's config and rules, evaluate every panel of
deploy/grafana/keel-dashboard.json through Prometheus's HTTP API, draw the dashboard as one HTML
page (keel_render) and screenshot it with headless chromium. Everything started is stopped.

    .venv/bin/python deploy/grafana/render/snapshot.py            # ~4 minutes
    .venv/bin/python deploy/grafana/render/snapshot.py --redraw   # re-render the last run only

Needs promtool/prometheus (deploy/prometheus/install.sh) and chromium (deploy/browser/install.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path

import yaml
from keel_render.dashboard import load_dashboard
from keel_render.load import FETCH_SCENARIO, LoadDriver, StatusServer
from keel_render.page import Layout, render_page
from keel_render.prometheus import PrometheusServer, find_binary, scrape_config
from keel_render.query import PrometheusClient, Snapshot, TimeRange, evaluate
from keel_render.screenshot import find_chromium, screenshot

from keel_cli.stack import harness_credentials
from keel_core.grpc import use_client_credentials

# The stacks this script starts are secured: dial each service as its usual caller.
use_client_credentials(harness_credentials)

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "deploy" / "grafana" / "keel-dashboard.json"
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
CACHE = Path(os.environ.get("KEEL_CACHE_DIR", Path.home() / ".cache" / "keel"))
WORK = CACHE / "dashboard-snapshot"
SCRAPE_S = 5.0
CAPTION = "real Prometheus · live Keel stack · drawn by deploy/grafana/render"
# The scripted model is free; price it like a small hosted model so the cost panels mean
# something (US dollars per 1,000 tokens).
PRICES = {"scripted": {"prompt": 0.00015, "completion": 0.0006}}


def stack_env(run_dir: Path, web_port: int) -> dict[str, str]:
    """Settings of the snapshot's stack beyond `make run`'s: the extra scenario, prices, the
    local status API as an allowed fetch target, quick breakers so an outage shows, and the
    approval inbox on a free port (``with_free_ports`` moves only gRPC and metrics ports)."""
    demo = REPO / "services/llm-gateway/src/keel_llm_gateway/scenarios/demo.yaml"
    scenarios = yaml.safe_load(demo.read_text())
    scenarios["scenarios"].insert(0, FETCH_SCENARIO)
    scenario_file = run_dir / "scenarios.yaml"
    scenario_file.write_text(yaml.safe_dump(scenarios, sort_keys=False))
    return {
        "KEEL_LLM_GATEWAY_SCENARIO_FILE": str(scenario_file),
        "KEEL_LLM_GATEWAY_PRICES": json.dumps(PRICES),
        "KEEL_TOOL_GATEWAY_TEST_TOOLS_DIR": str(run_dir / "counts"),
        "KEEL_TOOL_GATEWAY_HTTP_FETCH__ALLOWED_DOMAINS": json.dumps(["127.0.0.1"]),
        "KEEL_TOOL_GATEWAY_HTTP_FETCH__ALLOWED_NETWORKS": json.dumps(["127.0.0.1/32"]),
        "KEEL_TOOL_GATEWAY_HTTP_FETCH__TIMEOUT_S": "1",
        "KEEL_TOOL_GATEWAY_RESILIENCE__BREAKER_RESET_TIMEOUT_S": "10",
        "KEEL_APPROVAL_WEB_PORT": str(web_port),
    }


async def run_live(duration_s: float, rate: float, crash: bool) -> Snapshot:
    from keel_cli.broker import local_broker
    from keel_cli.stack import LocalStack, free_port, with_free_ports
    from keel_core.bus.admin import ensure_topics
    from keel_core.settings import KafkaSettings

    binary = find_binary("prometheus")
    if binary is None:
        sys.exit("prometheus not found: run deploy/prometheus/install.sh")
    run_dir = WORK / "run"
    # A fresh stack every time: state left by an earlier run (or an older Milvus Lite) must not
    # leak into the picture.
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    status = StatusServer(free_port())
    print("• Kafka: starting a broker of its own…", flush=True)
    async with local_broker() as bootstrap:
        kafka = KafkaSettings(bootstrap=bootstrap)
        await ensure_topics(kafka)
        specs = with_free_ports()
        stack = LocalStack(
            run_dir=run_dir,
            kafka_bootstrap=bootstrap,
            specs=specs,
            extra_env=stack_env(run_dir, free_port()),
        )
        prometheus = PrometheusServer(binary, free_port())
        status.up()
        try:
            print("• starting the six services…", flush=True)
            await stack.start()
            config = scrape_config(
                PROMETHEUS_DIR / "prometheus.yml",
                {s.name: s.metrics_port for s in specs},
                SCRAPE_S,
            )
            prometheus.start(config, PROMETHEUS_DIR / "alerts.yml")
            print(f"• prometheus on {prometheus.url}; load for {duration_s:.0f} s…", flush=True)
            start = time.time()
            driver = LoadDriver(kafka, stack, status)
            await driver.run(duration_s, rate, crash=crash)
            await asyncio.sleep(3 * SCRAPE_S)  # let the last sessions finish and be scraped
            end = time.time()
            print(f"  submitted: {dict(driver.report.submitted)}")
            print(f"  reviewer:  {dict(driver.report.decisions)}")
            for line in driver.report.events:
                print(f"  {line}")
            client = PrometheusClient(prometheus.url)
            span = TimeRange(start=start, end=end, step_s=SCRAPE_S, scrape_interval_s=SCRAPE_S)
            snapshot = evaluate(client, load_dashboard(DASHBOARD), span)
            snapshot.notes = alert_states(client) + driver.report.events
            return snapshot
        finally:
            prometheus.stop()
            status.down()
            print("• stopping services and Kafka…", flush=True)
            await stack.stop()


def alert_states(client: PrometheusClient) -> list[str]:
    """The rules as Prometheus loaded them, with their state at the end of the run."""
    data = client.get("/api/v1/rules")["data"]
    assert isinstance(data, dict)
    return [
        f"rule {rule['name']}: {rule.get('state', rule.get('health'))}"
        for group in data["groups"]
        for rule in group["rules"]
    ]


def report(snapshot: Snapshot) -> int:
    """Prints panels without data; their count is the exit code's business."""
    dashboard = load_dashboard(DASHBOARD)
    empty = 0
    for panel in dashboard.panels:
        if panel.is_row:
            continue
        data = snapshot.panels[panel.id]
        names = ", ".join(s.name for s in data.series[:6])
        state = "ERROR " + "; ".join(data.errors) if data.errors else f"{len(data.series)} series"
        if not data.series:
            empty += 1
        print(f"  {panel.id:>3} {panel.title:<36} {state}  {names}")
    return empty


def draw(snapshot: Snapshot, png: Path, width: int) -> None:
    chromium = find_chromium()
    if chromium is None:
        sys.exit("chromium not found: run deploy/browser/install.sh")
    dashboard = load_dashboard(DASHBOARD)
    page = WORK / "dashboard.html"
    page.write_text(render_page(dashboard, snapshot, width, CAPTION))
    png.parent.mkdir(parents=True, exist_ok=True)
    screenshot(chromium, page, png, width, Layout(width).page_height(dashboard))
    print(f"• {png} ({png.stat().st_size // 1024} KiB), page {page}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=150.0, help="seconds of traffic")
    parser.add_argument("--rate", type=float, default=2.0, help="tasks a second (average)")
    parser.add_argument("--no-crash", action="store_true", help="do not kill -9 the agent loop")
    parser.add_argument("--redraw", action="store_true", help="re-render the last run's data")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "dashboard.png")
    args = parser.parse_args()
    saved = WORK / "snapshot.json"
    if args.redraw:
        snapshot = Snapshot.model_validate_json(saved.read_text())
    else:
        snapshot = asyncio.run(run_live(args.duration, args.rate, not args.no_crash))
        WORK.mkdir(parents=True, exist_ok=True)
        saved.write_text(snapshot.model_dump_json())
    for note in snapshot.notes:
        print(f"  {note}")
    empty = report(snapshot)
    draw(snapshot, args.out, args.width)
    if empty:
        print(f"✗ {empty} panel(s) without data")
    return 1 if empty else 0


if __name__ == "__main__":
    sys.exit(main())
