"""Metrics of the agent loop. ``AgentMetrics`` is also the loop's ``LoopObserver``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from keel_agent_loop.domain.models import AgentState

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
ITERATION_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 200)


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sessions = Counter(
            "keel_agent_sessions",
            "Finished sessions by outcome (completed, failed) and failure reason",
            ["outcome", "reason"],
            registry=registry,
        )
        self.iterations = Histogram(
            "keel_agent_iterations_to_completion",
            "Iterations a session took until it finished",
            ["outcome"],
            buckets=ITERATION_BUCKETS,
            registry=registry,
        )
        self.llm_seconds = Histogram(
            "keel_agent_llm_call_seconds",
            "Latency of llm-gateway calls as the loop sees them (retries included)",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tool_seconds = Histogram(
            "keel_agent_tool_call_seconds",
            "Latency of tool-gateway Execute calls",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tool_results = Counter(
            "keel_agent_tool_results",
            "Tool call results by tool and status (ok, error, denied, needs_approval)",
            ["tool", "status"],
            registry=registry,
        )
        self.step_seconds = Histogram(
            "keel_agent_step_seconds",
            "Duration of one iteration: think, then act and observe each tool call",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def llm_call(self, seconds: float, ok: bool) -> None:
        self.llm_seconds.labels("ok" if ok else "error").observe(seconds)

    def tool_call(self, tool: str, status: str, seconds: float) -> None:
        self.tool_seconds.labels(tool).observe(seconds)
        self.tool_results.labels(tool, status).inc()

    def step(self, seconds: float) -> None:
        self.step_seconds.observe(seconds)

    def session_finished(self, state: AgentState) -> None:
        self.sessions.labels(state.status, state.failure_reason or "").inc()
        self.iterations.labels(state.status).observe(state.iteration)
