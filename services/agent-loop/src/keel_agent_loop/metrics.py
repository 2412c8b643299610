"""Metrics of the agent loop. ``AgentMetrics`` is also the loop's ``LoopObserver``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from keel_agent_loop.domain.models import AgentState

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
ITERATION_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 200)
# Fractions of the window; the top buckets are fine-grained because trimming starts near 1.
UTILISATION_BUCKETS = (0.1, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
SESSION_TOKEN_BUCKETS = (250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 1e6)
SESSION_COST_BUCKETS = (0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


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
        self.context_utilisation = Histogram(
            "keel_agent_context_window_utilisation",
            "Prompt tokens / context window at each LLM call (after trimming the history)",
            buckets=UTILISATION_BUCKETS,
            registry=registry,
        )
        self.session_tokens = Histogram(
            "keel_agent_session_tokens",
            "Tokens (prompt plus completion) a session used, observed when it finishes",
            ["outcome"],
            buckets=SESSION_TOKEN_BUCKETS,
            registry=registry,
        )
        self.session_cost = Histogram(
            "keel_agent_session_cost_usd",
            "Cost of a session in US dollars, observed when it finishes",
            ["outcome"],
            buckets=SESSION_COST_BUCKETS,
            registry=registry,
        )

    def llm_call(self, seconds: float, ok: bool) -> None:
        self.llm_seconds.labels("ok" if ok else "error").observe(seconds)

    def tool_call(self, tool: str, status: str, seconds: float) -> None:
        self.tool_seconds.labels(tool).observe(seconds)
        self.tool_results.labels(tool, status).inc()

    def step(self, seconds: float) -> None:
        self.step_seconds.observe(seconds)

    def context_used(self, prompt_tokens: int, window_tokens: int) -> None:
        self.context_utilisation.observe(prompt_tokens / window_tokens if window_tokens else 0.0)

    def session_finished(self, state: AgentState) -> None:
        self.sessions.labels(state.status, state.failure_reason or "").inc()
        self.iterations.labels(state.status).observe(state.iteration)
        usage = state.usage
        self.session_tokens.labels(state.status).observe(
            usage.prompt_tokens + usage.completion_tokens
        )
        self.session_cost.labels(state.status).observe(usage.cost_usd)
