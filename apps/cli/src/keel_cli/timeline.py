"""A plan's timeline from its recorded events: which agent ran when, and what it waited for.

Pure: ``build_timeline`` takes envelopes already read (``keel.plans`` and the nodes'
``keel.task-events``) and the renderers return strings, so both are tested on hand-made events.

Each node's row has three phases: waiting for its dependencies (plan start → dispatched),
queued for a worker (dispatched → its session's first event) and running (→ its result). A
nested plan's nodes follow their parent node, indented.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime

from keel_contracts.events import Envelope
from keel_contracts.events.plans import (
    NodeDispatched,
    NodeFinished,
    PlanFinished,
    PlanSpec,
    PlanSubmitted,
    node_session_id,
)

WAIT, QUEUE, RUN = "·", "░", "█"
COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "running": "#1565c0"}


@dataclass
class Row:
    node_id: str
    depth: int
    kind: str
    depends_on: list[str]
    status: str = "pending"
    ready_from: datetime | None = None
    dispatched: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    error: str = ""


@dataclass
class Timeline:
    plan_id: str
    goal: str
    status: str
    begin: datetime | None
    end: datetime | None
    rows: list[Row] = field(default_factory=list)
    error: str = ""

    @property
    def seconds(self) -> float:
        if self.begin is None or self.end is None:
            return 0.0
        return (self.end - self.begin).total_seconds()


@dataclass
class _Events:
    submitted: dict[str, tuple[datetime, PlanSubmitted]] = field(default_factory=dict)
    dispatched: dict[str, datetime] = field(default_factory=dict)
    finished: dict[str, tuple[datetime, NodeFinished]] = field(default_factory=dict)
    plan_done: dict[str, tuple[datetime, PlanFinished]] = field(default_factory=dict)
    session_first: dict[str, datetime] = field(default_factory=dict)
    session_last: dict[str, datetime] = field(default_factory=dict)


def build_timeline(plan_id: str, envelopes: list[Envelope]) -> Timeline:
    """The timeline of ``plan_id`` (and its nested plans) from any mix of plan events and task
    events; the first record of each kind counts (later ones are redeliveries)."""
    seen = _collect(envelopes)
    first = seen.submitted.get(plan_id)
    if first is None:
        return Timeline(plan_id, "", "unknown", None, None, error="no PlanSubmitted found")
    begin, submitted = first
    done = seen.plan_done.get(plan_id)
    timeline = Timeline(
        plan_id=plan_id,
        goal=submitted.plan.goal,
        status=done[1].status if done else "running",
        begin=begin,
        end=done[0] if done else None,
        error=done[1].error if done else "",
    )
    _add_rows(timeline.rows, seen, plan_id, submitted.plan, begin, 0)
    if timeline.end is None:
        ends = [t for r in timeline.rows for t in (r.ended, r.started, r.dispatched) if t]
        timeline.end = max(ends, default=begin)
    return timeline


def _collect(envelopes: list[Envelope]) -> _Events:
    seen = _Events()
    for env in sorted(envelopes, key=lambda e: e.time):
        if env.type == PlanSubmitted.event_type:
            sub = env.parse(PlanSubmitted)
            seen.submitted.setdefault(sub.plan.plan_id or env.session_id, (env.time, sub))
        elif env.type == NodeDispatched.event_type:
            disp = env.parse(NodeDispatched)
            seen.dispatched.setdefault(disp.session_id, env.time)
        elif env.type == NodeFinished.event_type:
            fin = env.parse(NodeFinished)
            seen.finished.setdefault(node_session_id(fin.plan_id, fin.node_id), (env.time, fin))
        elif env.type == PlanFinished.event_type:
            pf = env.parse(PlanFinished)
            seen.plan_done.setdefault(pf.plan_id, (env.time, pf))
        elif env.type.startswith("keel.task."):
            seen.session_first.setdefault(env.session_id, env.time)
            seen.session_last[env.session_id] = env.time
    return seen


def _add_rows(
    rows: list[Row], seen: _Events, plan_id: str, spec: PlanSpec, begin: datetime, depth: int
) -> None:
    statuses = seen.plan_done[plan_id][1].nodes if plan_id in seen.plan_done else {}
    for node in spec.nodes:
        session = node_session_id(plan_id, node.id)
        row = Row(node.id, depth, node.kind, list(node.depends_on), ready_from=begin)
        row.dispatched = seen.dispatched.get(session)
        row.started = seen.session_first.get(session)
        if node.kind == "plan" and session in seen.submitted:
            row.started = seen.submitted[session][0]
        if row.dispatched is not None:
            row.status = "running"
            row.started = row.started or row.dispatched
        finished = seen.finished.get(session)
        if finished is not None:
            row.ended, row.status, row.error = finished[0], finished[1].status, finished[1].error
        else:
            if row.dispatched is not None:
                row.ended = seen.session_last.get(session)
            row.status = statuses.get(node.id, row.status)
        rows.append(row)
        child = seen.submitted.get(session)
        if node.kind == "plan" and child is not None:
            _add_rows(rows, seen, session, child[1].plan, child[0], depth + 1)


def _secs(a: datetime | None, b: datetime | None) -> float:
    return (b - a).total_seconds() if a and b else 0.0


def render_text(timeline: Timeline, width: int = 60) -> str:
    """A Gantt chart for the terminal: one row per node, wait ·, queue ░, run █."""
    head = f"plan {timeline.plan_id}: {timeline.status} in {timeline.seconds:.1f}s"
    if timeline.goal:
        head += f" — {_clip(timeline.goal, 60)}"
    lines = [head, f"  {WAIT} waiting for dependencies   {QUEUE} queued   {RUN} running"]
    if timeline.begin is None:
        return "\n".join([*lines, f"  ({timeline.error})"])
    label_width = max([len(_label(r)) for r in timeline.rows] + [4])
    total = max(timeline.seconds, 1e-6)

    def col(t: datetime | None) -> int:
        return round(_secs(timeline.begin, t) / total * width) if t else 0

    for row in timeline.rows:
        cells = [" "] * width
        if row.dispatched is not None:
            start, queue, stop = (
                col(row.dispatched),
                col(row.started),
                col(row.ended or timeline.end),
            )
            for i in range(col(row.ready_from), start):
                cells[min(i, width - 1)] = WAIT
            for i in range(start, queue):
                cells[min(i, width - 1)] = QUEUE
            for i in range(queue, max(stop, queue + 1)):
                cells[min(i, width - 1)] = RUN
        took = f"{_secs(row.started, row.ended):5.1f}s" if row.ended and row.started else "     -"
        note = f"waited for {', '.join(row.depends_on)}" if row.depends_on else ""
        if row.error:
            note = f"{note}; {_clip(row.error, 50)}" if note else _clip(row.error, 50)
        lines.append(
            f"  {_label(row):<{label_width}} |{''.join(cells)}| {took} {row.status:<9} {note}"
        )
    if timeline.error:
        lines.append(f"  error: {_clip(timeline.error, 200)}")
    return "\n".join(line.rstrip() for line in lines)


def render_svg(timeline: Timeline, width: int = 900) -> str:
    """The same chart as a standalone SVG: grey wait, light queue, a coloured run bar."""
    row_h, top, left = 26, 48, 220
    plot = width - left - 20
    height = top + row_h * max(len(timeline.rows), 1) + 30
    total = max(timeline.seconds, 1e-6)

    def x(t: datetime | None) -> float:
        return left + (_secs(timeline.begin, t) / total * plot if t else 0.0)

    title = f"plan {timeline.plan_id}: {timeline.status} in {timeline.seconds:.1f}s"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="12">',
        f'<text x="10" y="20" font-size="14">{html.escape(title)}</text>',
    ]
    for tick in range(6):
        tx = left + plot * tick / 5
        parts.append(
            f'<line x1="{tx:.1f}" y1="{top - 8}" x2="{tx:.1f}" y2="{height - 24}" stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{tx:.1f}" y="{height - 8}" text-anchor="middle">'
            f"{total * tick / 5:.1f}s</text>"
        )
    for i, row in enumerate(timeline.rows):
        y = top + i * row_h
        parts.append(f'<text x="10" y="{y + 15}">{html.escape(_label(row))}</text>')
        if row.dispatched is not None:
            end = row.ended or timeline.end
            parts += [
                _rect(
                    x(row.ready_from),
                    x(row.dispatched),
                    y,
                    "#e0e0e0",
                    "waiting for " + (", ".join(row.depends_on) or "a slot"),
                ),
                _rect(x(row.dispatched), x(row.started), y, "#b3c7e6", "queued for a worker"),
                _rect(
                    x(row.started),
                    x(end),
                    y,
                    COLOURS.get(row.status, "#757575"),
                    f"{row.node_id}: {row.status} {_secs(row.started, end):.1f}s",
                ),
            ]
        else:
            parts.append(f'<text x="{left}" y="{y + 15}" fill="#757575">{row.status}</text>')
    parts.append("</svg>")
    return "\n".join(part for part in parts if part)


def render_html(timeline: Timeline) -> str:
    """A self-contained page: the SVG chart and a table of the nodes."""
    cells = "\n".join(
        f"<tr><td>{html.escape(_label(r))}</td><td>{r.status}</td>"
        f"<td>{_secs(r.ready_from, r.dispatched):.2f}</td>"
        f"<td>{_secs(r.dispatched, r.started):.2f}</td><td>{_secs(r.started, r.ended):.2f}</td>"
        f"<td>{html.escape(', '.join(r.depends_on))}</td><td>{html.escape(r.error)}</td></tr>"
        for r in timeline.rows
    )
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>plan {html.escape(timeline.plan_id)}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}</style>"
        f"</head><body><h1>plan {html.escape(timeline.plan_id)}</h1>"
        f"<p>{html.escape(timeline.goal)}</p>\n{render_svg(timeline)}\n"
        "<table><tr><th>node</th><th>status</th><th>waited s</th><th>queued s</th>"
        f"<th>ran s</th><th>depends on</th><th>error</th></tr>\n{cells}\n</table>"
        "</body></html>\n"
    )


def _rect(x1: float, x2: float, y: int, fill: str, title: str) -> str:
    if x2 - x1 <= 0:
        return ""
    return (
        f'<rect x="{x1:.1f}" y="{y + 3}" width="{max(x2 - x1, 1):.1f}" height="18" '
        f'fill="{fill}"><title>{html.escape(title)}</title></rect>'
    )


def _label(row: Row) -> str:
    return "  " * row.depth + row.node_id + ("/" if row.kind == "plan" else "")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
