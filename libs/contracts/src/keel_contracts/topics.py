"""The catalog of Keel's Kafka topics and their policies. Topics are created explicitly and
idempotently at start-up from this list (``keel_core.bus.admin.ensure_topics``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TASKS = "keel.tasks"
TASK_EVENTS = "keel.task-events"
RESULTS = "keel.results"
CHECKPOINTS = "keel.checkpoints"
TOOL_RESULTS = "keel.tool-results"
APPROVAL_REQUESTS = "keel.approval.requests"
APPROVAL_DECISIONS = "keel.approval.decisions"
# Reviewers' actions, folded by every approval replica into one decision (ADR 0014).
APPROVAL_INTENTS = "keel.approval.intents"
AUDIT = "keel.audit"
# The signed head of each audit identity's chain (compacted, key = identity).
AUDIT_HEADS = "keel.audit.heads"
PLANS = "keel.plans"
SUBTASKS = "keel.subtasks"
# Messages that leave Keel (send_email and friends), written only after approval.
OUTBOX = "keel.outbox"
# Broadcast control messages (cancel a running session): every agent-loop replica reads all.
CONTROL = "keel.control"
# Items of named policy lists (compacted, key "<list>:<item>"; a tombstone removes one).
POLICY_LISTS = "keel.policy.lists"
# Calls policy let through, reserved on the running totals of state conditions.
POLICY_STATE = "keel.policy.state"
# State windows reach back at most this far; the state topic keeps a day more.
POLICY_STATE_WINDOW_MS = 7 * 24 * 3600 * 1000
# What each replica's rate limiter let through, folded by the other replicas (ADR 0012). A
# bucket refills within seconds, so an hour of spend is more than any replica needs.
RATELIMIT_SPEND = "keel.ratelimit.spend"
RATELIMIT_SPEND_RETENTION_MS = 3600 * 1000
# The LLM gateway's budget ledger (ADR 0015): reservations and settlements, key = tenant. Kept
# forever: budgets have no window, so a replica starting later must fold every spend.
LLM_BUDGET = "keel.llm.budget"
# The latest summary of every agent-loop session (compacted, key = session id; ADR 0013): what
# Get and Cancel answer from on any replica, after any restart.
SESSIONS = "keel.sessions"

DLQ_SUFFIX = ".dlq"
WEEK_MS = 7 * 24 * 3600 * 1000


def heads_of(audit_topic: str) -> str:
    """Where the signed chain heads of an audit topic are (``keel.audit`` -> ``AUDIT_HEADS``)."""
    return audit_topic + ".heads"


def dlq_of(topic: str) -> str:
    return topic + DLQ_SUFFIX


@dataclass(frozen=True)
class TopicSpec:
    name: str
    cleanup: Literal["delete", "compact"] = "delete"
    # -1 keeps records forever.
    retention_ms: int = WEEK_MS
    has_dlq: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup,
            "retention.ms": str(self.retention_ms),
            **self.extra,
        }


CATALOG: tuple[TopicSpec, ...] = (
    TopicSpec(TASKS, has_dlq=True),
    TopicSpec(TASK_EVENTS),
    TopicSpec(RESULTS),
    TopicSpec(CHECKPOINTS, cleanup="compact", retention_ms=-1),
    TopicSpec(SESSIONS, cleanup="compact", retention_ms=-1),
    TopicSpec(TOOL_RESULTS, cleanup="compact", retention_ms=-1),
    TopicSpec(APPROVAL_REQUESTS, retention_ms=-1, has_dlq=True),
    TopicSpec(APPROVAL_DECISIONS, retention_ms=-1, has_dlq=True),
    TopicSpec(APPROVAL_INTENTS, retention_ms=-1),
    # Append-only: kept forever, never compacted. Deletion is refused by ACLs in production.
    TopicSpec(AUDIT, retention_ms=-1),
    # Compacted, kept forever: the latest signed head of every identity. Records stay
    # uncompacted for a day so the heads of concurrent replicas can all be checked.
    TopicSpec(
        AUDIT_HEADS,
        cleanup="compact",
        retention_ms=-1,
        extra={"min.compaction.lag.ms": str(24 * 3600 * 1000)},
    ),
    TopicSpec(PLANS, has_dlq=True),
    TopicSpec(SUBTASKS, has_dlq=True),
    TopicSpec(CONTROL, retention_ms=24 * 3600 * 1000),
    TopicSpec(OUTBOX, retention_ms=-1),
    TopicSpec(POLICY_LISTS, cleanup="compact", retention_ms=-1),
    TopicSpec(POLICY_STATE, retention_ms=POLICY_STATE_WINDOW_MS + 24 * 3600 * 1000),
    TopicSpec(RATELIMIT_SPEND, retention_ms=RATELIMIT_SPEND_RETENTION_MS),
    TopicSpec(LLM_BUDGET, retention_ms=-1),
)


def all_specs() -> list[TopicSpec]:
    """Every topic including dead-letter topics, which keep their records forever."""
    specs = list(CATALOG)
    specs += [TopicSpec(dlq_of(s.name), retention_ms=-1) for s in CATALOG if s.has_dlq]
    return specs
