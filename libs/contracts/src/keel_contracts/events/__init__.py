"""Event envelope and payload types for every Kafka message."""

from keel_contracts.events.envelope import SCHEMA_VERSION, Envelope, EventData
from keel_contracts.events.plans import (
    NodeDispatched,
    NodeFinished,
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
    ApprovalRequested,
    ApprovalVoted,
    AuditChainHead,
    AuditRecord,
    SessionCheckpoint,
    SessionFinished,
    SessionSummary,
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
    "ApprovalVoted",
    "ApprovalRequested",
    "AuditChainHead",
    "AuditRecord",
    "Envelope",
    "EventData",
    "NodeDispatched",
    "NodeFinished",
    "PlanCheckpoint",
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
    "SessionSummary",
    "TaskCancelRequested",
    "ToolCallStarted",
    "ToolResultRecorded",
    "TaskCompleted",
    "TaskFailed",
    "TaskProgress",
    "TaskSubmitted",
]
