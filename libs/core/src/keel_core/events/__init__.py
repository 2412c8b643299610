"""Event envelope and payload types for every Kafka message."""

from keel_core.events.envelope import SCHEMA_VERSION, Envelope, EventData
from keel_core.events.plans import (
    NodeDispatched,
    NodeFinished,
    PlanCheckpoint,
    PlanFinished,
    PlanInvalid,
    PlanNode,
    PlanSpec,
    PlanSubmitted,
)
from keel_core.events.types import (
    ApprovalDecided,
    ApprovalRequested,
    ApprovalVoted,
    AuditRecord,
    SessionCheckpoint,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskProgress,
    TaskSubmitted,
    ToolResultRecorded,
)

__all__ = [
    "SCHEMA_VERSION",
    "ApprovalDecided",
    "ApprovalVoted",
    "ApprovalRequested",
    "AuditRecord",
    "Envelope",
    "EventData",
    "NodeDispatched",
    "NodeFinished",
    "PlanCheckpoint",
    "PlanFinished",
    "PlanInvalid",
    "PlanNode",
    "PlanSpec",
    "PlanSubmitted",
    "SessionCheckpoint",
    "TaskCancelRequested",
    "ToolResultRecorded",
    "TaskCompleted",
    "TaskFailed",
    "TaskProgress",
    "TaskSubmitted",
]
