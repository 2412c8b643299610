"""The plan timeline (keel_cli.timeline) from hand-made events: rows, phases and renderings.

Kept with the plan tests because the events come from the plan handler; the renderer itself
lives in the CLI.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keel_agent_loop.plans import debate, sub_plan
from keel_cli.timeline import build_timeline, render_html, render_svg, render_text
from keel_contracts.events import Envelope, EventData, TaskProgress
from keel_contracts.events.plans import (
    NodeDispatched,
    NodeFinished,
    PlanFinished,
    PlanNode,
    PlanSpec,
    PlanSubmitted,
)

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float, payload: EventData, session_id: str) -> Envelope:
    envelope = Envelope.wrap(payload, source="test", session_id=session_id)
    return envelope.model_copy(update={"time": T0 + timedelta(seconds=seconds)})


def dispatched(t: float, plan: str, node: str) -> Envelope:
    return at(
        t, NodeDispatched(plan_id=plan, node_id=node, session_id=f"{plan}.{node}", goal="g"), plan
    )


def started(t: float, session: str) -> Envelope:
    return at(t, TaskProgress(kind="started", iteration=0), session)


def finished(t: float, plan: str, node: str, ok: bool = True) -> Envelope:
    status = "succeeded" if ok else "failed"
    payload = NodeFinished(
        plan_id=plan,
        node_id=node,
        session_id=f"{plan}.{node}",
        status=status,
        output="out",
        error="" if ok else "boom",
    )
    return at(t, payload, plan)


def chain_events() -> list[Envelope]:
    spec = PlanSpec(
        plan_id="p",
        goal="two then one",
        max_parallel=1,
        nodes=[
            PlanNode(id="a", goal="x"),
            PlanNode(id="b", goal="y"),
            PlanNode(id="c", goal="z", depends_on=["a", "b"]),
            PlanNode(id="d", goal="w", depends_on=["c"]),
        ],
    )
    return [
        at(0, PlanSubmitted(plan=spec), "p"),
        dispatched(0, "p", "a"),
        started(1, "p.a"),
        finished(3, "p", "a"),
        dispatched(3, "p", "b"),
        started(3, "p.b"),
        finished(5, "p", "b"),
        dispatched(5, "p", "c"),
        started(6, "p.c"),
        finished(10, "p", "c", ok=False),
        finished(10.5, "p", "c"),  # a late duplicate: the first record counts
        at(
            10,
            PlanFinished(
                plan_id="p",
                status="failed",
                error="node c failed: boom",
                nodes={"a": "succeeded", "b": "succeeded", "c": "failed", "d": "cancelled"},
            ),
            "p",
        ),
    ]


def test_rows_have_wait_queue_and_run_phases() -> None:
    timeline = build_timeline("p", list(reversed(chain_events())))
    assert (timeline.status, timeline.seconds) == ("failed", 10.0)
    rows = {r.node_id: r for r in timeline.rows}
    assert [r.node_id for r in timeline.rows] == ["a", "b", "c", "d"]
    b = rows["b"]
    assert b.dispatched is not None
    assert b.ready_from is not None
    assert (b.dispatched - b.ready_from).total_seconds() == 3  # waited for a parallel slot
    c = rows["c"]
    assert c.started is not None
    assert c.dispatched is not None
    assert c.ended is not None
    assert ((c.started - c.dispatched).total_seconds(), (c.ended - c.started).total_seconds()) == (
        1,
        4,
    )
    assert (c.status, c.error, c.depends_on) == ("failed", "boom", ["a", "b"])
    assert (rows["d"].status, rows["d"].dispatched) == ("cancelled", None)


def test_text_gantt_shows_each_phase_in_its_columns() -> None:
    text = render_text(build_timeline("p", chain_events()), width=20)
    lines = text.splitlines()
    assert lines[0] == "plan p: failed in 10.0s — two then one"
    row_a, row_b, row_c, row_d = lines[2:6]
    assert row_a == "  a    |░░████              |   2.0s succeeded"
    assert "|······████          |   2.0s succeeded" in row_b
    assert "|··········░░████████|   4.0s failed    waited for a, b; boom" in row_c
    assert "|                    |      - cancelled waited for c" in row_d
    assert lines[-1] == "  error: node c failed: boom"


def test_nested_plan_rows_follow_their_parent_node() -> None:
    spec = PlanSpec(plan_id="top", nodes=[sub_plan("team", "go", debate("q", 2))])
    child = debate("q", 2).model_copy(update={"plan_id": "top.team", "goal": "go"})
    events = [
        at(0, PlanSubmitted(plan=spec), "top"),
        dispatched(0, "top", "team"),
        at(0.5, PlanSubmitted(plan=child, parent_plan_id="top", parent_node_id="team"), "top.team"),
        dispatched(0.5, "top.team", "agent-1"),
        dispatched(0.5, "top.team", "agent-2"),
        finished(2, "top.team", "agent-1"),
        finished(2, "top.team", "agent-2"),
        dispatched(2, "top.team", "judge"),
        finished(3, "top.team", "judge"),
        finished(3, "top", "team"),
    ]
    timeline = build_timeline("top", events)
    assert [(r.node_id, r.depth) for r in timeline.rows] == [
        ("team", 0),
        ("agent-1", 1),
        ("agent-2", 1),
        ("judge", 1),
    ]
    assert timeline.status == "running"  # no PlanFinished recorded yet
    assert "    judge   |" in render_text(timeline, width=12)
    assert render_text(timeline).splitlines()[2].startswith("  team/")


def test_svg_and_html_are_self_contained() -> None:
    timeline = build_timeline("p", chain_events())
    svg = render_svg(timeline)
    assert svg.startswith("<svg xmlns=")
    assert svg.endswith("</svg>")
    assert svg.count("<rect") == 2 + 2 + 3  # a: queue, run; b: wait, run; c: all three; d: none
    assert "<title>waiting for a, b</title>" in svg
    page = render_html(timeline)
    assert page.startswith("<!doctype html>")
    assert "<svg" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_unknown_plan_says_so() -> None:
    timeline = build_timeline("nope", chain_events())
    assert timeline.begin is None
    assert "no PlanSubmitted found" in render_text(timeline)
