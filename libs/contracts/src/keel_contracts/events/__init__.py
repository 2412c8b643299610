"""Event envelope and payload types for every Kafka message."""

from keel_contracts.events.budgets import BudgetReserved, BudgetScope, BudgetSettled
from keel_contracts.events.envelope import SCHEMA_VERSION, Envelope, EventData
from keel_contracts.events.plans import (
    NodeDispatched,
    NodeFinished,
    PlanCancelRequested,
    PlanCheckpoint,
    PlanFinished,
    PlanNode,
    PlanSpec,
    PlanSubmitted,
)
from keel_contracts.events.policy import PolicyListItem, PolicyStateReserved
from keel_contracts.events.ratelimit import RateLimitSpend, RateLimitSpent
from keel_contracts.events.types import (
    ApprovalDecided,
    ApprovalIntended,
    ApprovalRequested,
    ApprovalVoted,
    AuditChainHead,
    AuditRecord,
    SessionCheckpoint,
    SessionFinished,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
    TaskSubmitted,
    ToolCallStarted,
    ToolResultRecorded,
)

__all__ = [
    "SCHEMA_VERSION",
    "ApprovalDecided",
    "ApprovalIntended",
    "ApprovalVoted",
    "ApprovalRequested",
    "AuditChainHead",
    "AuditRecord",
    "BudgetReserved",
    "BudgetScope",
    "BudgetSettled",
    "Envelope",
    "EventData",
    "NodeDispatched",
    "NodeFinished",
    "PlanCheckpoint",
    "PlanCancelRequested",
    "PlanFinished",
    "PlanNode",
    "PlanSpec",
    "PlanSubmitted",
    "PolicyListItem",
    "PolicyStateReserved",
    "RateLimitSpend",
    "RateLimitSpent",
    "SessionCheckpoint",
    "SessionFinished",
    "TaskCancelRequested",
    "ToolCallStarted",
    "ToolResultRecorded",
    "TaskCompleted",
    "TaskFailed",
    "TaskProgress",
    "TaskSubmitted",
]
