"""The promises of docs/guarantees.md, checked after a chaos run from what the broker and the
counting tool hold: counts per check, not just a verdict."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from keel_cli.ops_audit import verify_records
from keel_contracts.events import Envelope, TaskCompleted, TaskFailed, TaskProgress
from keel_contracts.topics import AUDIT, DLQ_SUFFIX, RESULTS, TASK_EVENTS, all_specs, heads_of
from keel_core.bus.reader import read_topic
from keel_core.settings import KafkaSettings
from keel_core.trust import TrustMaterial
from keel_tool_gateway.adapters.tools.count import read_count


@dataclass(frozen=True)
class Session:
    session_id: str
    name: str  # the counter's name: unique per session
    steps: int

    @property
    def goal(self) -> str:
        return f"count {self.steps} times slowly: {self.name}"

    @property
    def answer(self) -> str:
        """What the scripted model answers when every call counted exactly once."""
        return f"counted {self.name} {self.steps} times; the last count was {self.steps}"


@dataclass(frozen=True)
class Disruption:
    target: str  # a service name, or "broker"
    downtime_s: float  # from the kill until the replacement was healthy (the broker: ready)
    recovery_s: float | None  # from the kill until a tool call succeeded again (None: never)
    idle: bool = False  # no progress because no session was left in flight (all had results)


@dataclass
class Report:
    seed: int
    sessions: int
    completed: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # reason -> sessions
    unfinished: int = 0
    correct: int = 0
    counters_exact: int = 0
    counters_repeated: int = 0  # sessions whose counter went past K: an effect ran twice
    counters_lost: int = 0  # sessions whose counter stopped short of K
    tool_errors_seen: int = 0  # tool results other than "ok" handed to the model
    sessions_with_tool_errors: int = 0
    results_total: int = 0
    # Sessions with more than one distinct result (a second, different envelope): broken.
    results_duplicated: int = 0
    # Identical copies (the same envelope id written again after a crash mid-finish):
    # allowed, since consumers dedupe by envelope id (docs/guarantees.md); reported.
    result_ids_repeated: int = 0
    audit_records: int = 0
    audit_producers: int = 0
    audit_break: str = ""
    dlq: dict[str, int] = field(default_factory=dict)
    unexpected_exits: dict[str, int] = field(default_factory=dict)
    disruptions: list[Disruption] = field(default_factory=list)
    elapsed_s: float = 0.0
    timed_out: bool = False
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def failures(self) -> list[str]:
        """One line per broken promise (empty: every promise held)."""
        lines = []
        if self.completed != self.sessions:
            lines.append(f"{self.sessions - self.completed}/{self.sessions} sessions not completed")
        if self.correct != self.sessions:
            lines.append(f"{self.sessions - self.correct}/{self.sessions} answers wrong or missing")
        if self.counters_repeated:
            lines.append(f"{self.counters_repeated} sessions ran an effect twice")
        if self.counters_lost:
            lines.append(f"{self.counters_lost} sessions lost an effect")
        if self.tool_errors_seen:
            lines.append(f"{self.tool_errors_seen} outages shown to the model as tool errors")
        if self.results_duplicated:
            lines.append(f"{self.results_duplicated} sessions have more than one distinct result")
        if self.audit_break:
            lines.append(f"audit chain broken: {self.audit_break}")
        if sum(self.dlq.values()):
            lines.append(f"{sum(self.dlq.values())} dead letters: {self.dlq}")
        return lines

    def render(self) -> str:
        n = self.sessions
        dup_extra = self.results_total - (n - self.unfinished)
        lines = [
            f"chaos run: seed {self.seed}, {n} sessions, {len(self.disruptions)} kills, "
            f"{self.elapsed_s:.0f} s" + (" (TIMED OUT)" if self.timed_out else ""),
            f"  sessions completed            {self.completed}/{n}"
            f"  (failed: {self.failed or 0}, no result: {self.unfinished})",
            f"  answers correct               {self.correct}/{n}",
            f"  counters exactly K            {self.counters_exact}/{n}"
            f"  (repeated: {self.counters_repeated}, lost: {self.counters_lost})",
            f"  tool errors shown to model    {self.tool_errors_seen}"
            f" in {self.sessions_with_tool_errors} sessions",
            f"  results on keel.results       {self.results_total}"
            f"  (sessions with >1 distinct: {self.results_duplicated}, extra records:"
            f" {max(dup_extra, 0)}, identical copies (same envelope id):"
            f" {self.result_ids_repeated})",
            f"  audit verify                  {self.audit_records} records from "
            f"{self.audit_producers} producers: " + (self.audit_break or "chains intact"),
            f"  dead letters                  {sum(self.dlq.values())}"
            + (f"  {self.dlq}" if sum(self.dlq.values()) else ""),
            f"  unexpected service exits      {sum(self.unexpected_exits.values())}"
            + (f"  {self.unexpected_exits}" if self.unexpected_exits else ""),
        ]
        lines += self._render_recovery()
        failures = self.failures()
        for kind, names in self.examples.items():
            lines.append(f"  e.g. {kind}: {', '.join(names[:5])}")
        lines.append("PROMISES BROKEN:" if failures else "every promise held")
        lines += [f"  - {line}" for line in failures]
        return "\n".join(lines)

    def _render_recovery(self) -> list[str]:
        lines = ["  recovery after each kill (kill -> a tool call succeeds again):"]
        by_target: dict[str, list[Disruption]] = defaultdict(list)
        for d in self.disruptions:
            by_target[d.target].append(d)
        for target, ds in by_target.items():
            seen = [d.recovery_s for d in ds if d.recovery_s is not None]
            down = [d.downtime_s for d in ds]
            figures = (
                f"p50 {statistics.median(seen):5.1f} s  max {max(seen):5.1f} s"
                if seen
                else "no progress seen"
            )
            lines.append(
                f"    {target:<13} x{len(ds)}  {figures}"
                f"  (down until healthy: p50 {statistics.median(down):.1f} s)"
                + (f"  [{len(ds) - len(seen)} without progress" if len(seen) < len(ds) else "")
                + (
                    f", {sum(d.idle for d in ds)} with no session in flight"
                    if len(seen) < len(ds)
                    else ""
                )
                + ("]" if len(seen) < len(ds) else "")
            )
        return lines


async def check(
    kafka: KafkaSettings, sessions: list[Session], counts: Path, report: Report, trust_dir: Path
) -> Report:
    """Fill ``report`` from the topics and the counter files; the broker must be up. The audit
    is verified as ``keel audit verify`` does: signatures, chains, run links, signed heads."""
    by_id = {s.session_id: s for s in sessions}
    await _check_results(kafka, by_id, report)
    _check_counters(sessions, counts, report)
    await _check_tool_errors(kafka, by_id, report)
    audit = verify_records(
        await read_topic(kafka, AUDIT, "chaos"),
        await read_topic(kafka, heads_of(AUDIT), "chaos"),
        TrustMaterial(trust_dir).audit_verifiers(),
        heads_of(AUDIT),
    )
    report.audit_records = sum(audit.counts.values())
    report.audit_producers = len(audit.counts)
    report.audit_break = str(audit.first_break) if audit.first_break else ""
    for spec in all_specs():
        if spec.name.endswith(DLQ_SUFFIX):
            report.dlq[spec.name] = len(await read_topic(kafka, spec.name, "chaos"))
    return report


async def read_results(kafka: KafkaSettings) -> list[Envelope]:
    return [Envelope.from_bytes(r.value or b"") for r in await read_topic(kafka, RESULTS, "chaos")]


async def _check_results(kafka: KafkaSettings, by_id: dict[str, Session], report: Report) -> None:
    per_session: dict[str, list[Envelope]] = defaultdict(list)
    for envelope in await read_results(kafka):
        if envelope.session_id in by_id:
            per_session[envelope.session_id].append(envelope)
    report.results_total = sum(len(v) for v in per_session.values())
    report.unfinished = len(by_id) - len(per_session)
    failed: Counter[str] = Counter()
    for session_id, session in by_id.items():
        results = per_session.get(session_id, [])
        if len({e.id for e in results}) > 1:
            report.results_duplicated += 1
            report.examples["duplicated result"].append(session.name)
        report.result_ids_repeated += len(results) - len({e.id for e in results})
        if not results:
            report.examples["no result"].append(session.name)
            continue
        first = results[0]
        if first.type == TaskCompleted.event_type:
            report.completed += 1
            if first.parse(TaskCompleted).answer == session.answer:
                report.correct += 1
            else:
                report.examples["wrong answer"].append(first.parse(TaskCompleted).answer[:80])
        else:
            failure = first.parse(TaskFailed)
            failed[failure.reason] += 1
            report.examples[f"failed ({failure.reason})"].append(failure.error[:80])
    report.failed = dict(failed)


def _check_counters(sessions: list[Session], counts: Path, report: Report) -> None:
    for session in sessions:
        path = counts / f"{session.name}.count"
        value = read_count(path)
        if value == session.steps:
            report.counters_exact += 1
        elif value > session.steps:
            report.counters_repeated += 1
            report.examples["counter repeated"].append(f"{session.name}={value}")
        else:
            report.counters_lost += 1
            report.examples["counter short"].append(f"{session.name}={value}")


async def _check_tool_errors(
    kafka: KafkaSettings, by_id: dict[str, Session], report: Report
) -> None:
    hit: set[str] = set()
    for record in await read_topic(kafka, TASK_EVENTS, "chaos"):
        envelope = Envelope.from_bytes(record.value or b"")
        if envelope.session_id not in by_id or envelope.type != TaskProgress.event_type:
            continue
        progress = envelope.parse(TaskProgress)
        if progress.kind == "tool_result" and progress.detail.get("status") != "ok":
            report.tool_errors_seen += 1
            hit.add(envelope.session_id)
            if len(report.examples["tool error"]) < 5:
                report.examples["tool error"].append(str(progress.detail.get("error"))[:80])
    report.sessions_with_tool_errors = len(hit)
