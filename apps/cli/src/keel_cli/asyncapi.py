"""``keel asyncapi``: the AsyncAPI 3.0 description of Keel's topics, generated from the topic
catalog and the pydantic payload models so it cannot drift from the code
(``keel asyncapi > docs/asyncapi.yaml``; a test fails when the checked-in file is stale)."""

from __future__ import annotations

from typing import Any

import yaml

from keel_contracts import topics
from keel_contracts.events import (
    SCHEMA_VERSION,
    ApprovalDecided,
    ApprovalIntended,
    ApprovalRequested,
    ApprovalVoted,
    AuditChainHead,
    AuditRecord,
    Envelope,
    EventData,
    NodeDispatched,
    NodeFinished,
    PlanCancelRequested,
    PlanCheckpoint,
    PlanFinished,
    PlanSubmitted,
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
from keel_contracts.events.budgets import BudgetReserved, BudgetSettled
from keel_contracts.events.policy import PolicyListItem, PolicyStateReserved
from keel_contracts.events.ratelimit import RateLimitSpent
from keel_contracts.topics import TopicSpec

REF = "#/components/schemas/{model}"

# Which payloads travel on which topic (the catalog says how a topic is kept, not what is on it).
CARRIES: dict[str, tuple[type[EventData], ...]] = {
    topics.TASKS: (TaskSubmitted, TaskCancelRequested),
    topics.TASK_EVENTS: (TaskProgress,),
    topics.RESULTS: (TaskCompleted, TaskFailed),
    topics.CHECKPOINTS: (SessionCheckpoint, SessionFinished, PlanCheckpoint),
    topics.TOOL_RESULTS: (ToolResultRecorded, ToolCallStarted),
    topics.APPROVAL_REQUESTS: (ApprovalRequested,),
    topics.APPROVAL_DECISIONS: (ApprovalDecided, ApprovalVoted),
    topics.APPROVAL_INTENTS: (ApprovalIntended,),
    topics.AUDIT: (AuditRecord,),
    topics.AUDIT_HEADS: (AuditChainHead,),
    topics.PLANS: (
        PlanSubmitted,
        NodeDispatched,
        NodeFinished,
        PlanFinished,
        PlanCancelRequested,
    ),
    topics.SUBTASKS: (TaskSubmitted, TaskCancelRequested),
    topics.CONTROL: (TaskCancelRequested,),
    topics.OUTBOX: (),
    topics.POLICY_LISTS: (PolicyListItem,),
    topics.POLICY_STATE: (PolicyStateReserved,),
    topics.RATELIMIT_SPEND: (RateLimitSpent,),
    topics.LLM_BUDGET: (BudgetReserved, BudgetSettled),
    topics.SESSIONS: (SessionSummary,),
}

DESCRIPTIONS: dict[str, str] = {
    topics.TASKS: "Tasks to run, keyed by session id; cancellations follow their task.",
    topics.TASK_EVENTS: "Progress of each session, keyed by session id.",
    topics.RESULTS: "The one final record of each session or plan, keyed by its id.",
    topics.CHECKPOINTS: "Compacted: the latest checkpoint of each session and plan.",
    topics.TOOL_RESULTS: "Compacted ledger of tool calls by idempotency key (no call runs twice).",
    topics.APPROVAL_REQUESTS: "Tool calls waiting for a person, keyed by session id.",
    topics.APPROVAL_DECISIONS: "Reviewers' decisions, keyed by session id.",
    topics.APPROVAL_INTENTS: (
        "Reviewers' actions, keyed by session id; approval replicas fold them into one "
        "decision (ADR 0014)."
    ),
    topics.AUDIT: "Signed, hash-chained audit records, keyed by producer id; kept forever.",
    topics.AUDIT_HEADS: "Compacted: the signed chain head of each audit identity.",
    topics.PLANS: "Multi-agent plans and their nodes' progress, keyed by plan id.",
    topics.SUBTASKS: "Tasks dispatched by plans to worker agents.",
    topics.CONTROL: "Broadcast control messages read by every agent-loop replica.",
    topics.OUTBOX: (
        "Messages leaving Keel (send_email and friends), written only after approval; "
        "payload defined by the tool gateway (keel.outbox.email)."
    ),
    topics.POLICY_LISTS: (
        "Compacted: items of named policy lists, key <list>:<item>; a tombstone removes one."
    ),
    topics.POLICY_STATE: (
        "Calls policy let through, reserved on running totals (state conditions); 8 days."
    ),
    topics.RATELIMIT_SPEND: (
        "Tokens each replica's rate limiter let through, folded by the other replicas; 1 hour."
    ),
    topics.LLM_BUDGET: (
        "LLM budget reservations and settlements, key = tenant, folded in log order by every "
        "gateway replica; kept forever."
    ),
    topics.SESSIONS: (
        "Compacted: the latest summary of each agent-loop session (status, answer, result), "
        "keyed by session id; what any replica answers Get from."
    ),
}

DLQ_HEADERS = (
    "reason",
    "exception",
    "trace",
    "topic",
    "partition",
    "offset",
    "group",
    "time",
)


def _schema(model: type[Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Add ``model``'s schema (and the models it nests) to ``schemas``; a reference to it."""
    schema = model.model_json_schema(ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _message(payload: type[EventData], schemas: dict[str, Any]) -> dict[str, Any]:
    data = _schema(payload, schemas)
    return {
        "name": payload.event_type,
        "title": payload.__name__,
        "summary": (payload.__doc__ or "").strip().splitlines()[0] if payload.__doc__ else "",
        "contentType": "application/json",
        "payload": {
            "allOf": [
                {"$ref": REF.format(model="Envelope")},
                {
                    "type": "object",
                    "properties": {"type": {"const": payload.event_type}, "data": data},
                },
            ]
        },
    }


def _dead_letter() -> dict[str, Any]:
    return {
        "name": "keel.dead-letter",
        "title": "DeadLetter",
        "summary": "The original record's bytes and key, with why it could not be handled.",
        "headers": {
            "type": "object",
            "properties": {f"keel-dlq-{h}": {"type": "string"} for h in DLQ_HEADERS},
        },
        "payload": {"description": "The original record's value, byte for byte."},
    }


def _bindings(spec: TopicSpec) -> dict[str, Any]:
    return {
        "kafka": {
            "topic": spec.name,
            "topicConfiguration": {
                "cleanup.policy": [spec.cleanup],
                "retention.ms": spec.retention_ms,
            },
            "bindingVersion": "0.5.0",
        }
    }


def _channel_id(topic: str) -> str:
    return topic.replace(".", "-")


def build_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    _schema(Envelope, schemas)
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    for spec in topics.all_specs():
        refs: dict[str, Any] = {}
        if spec.name.endswith(topics.DLQ_SUFFIX):
            messages.setdefault("DeadLetter", _dead_letter())
            refs["DeadLetter"] = {"$ref": "#/components/messages/DeadLetter"}
            description = f"Dead letters of {spec.name.removesuffix(topics.DLQ_SUFFIX)}."
        else:
            for payload in CARRIES[spec.name]:
                messages.setdefault(payload.__name__, _message(payload, schemas))
                refs[payload.__name__] = {"$ref": f"#/components/messages/{payload.__name__}"}
            description = DESCRIPTIONS[spec.name]
        channels[_channel_id(spec.name)] = {
            "address": spec.name,
            "description": description,
            "messages": refs,
            "bindings": _bindings(spec),
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Keel events",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "Every Kafka message in Keel is a JSON envelope (Envelope) whose `type` names "
                "the payload in `data`. Generated by `keel asyncapi`; do not edit by hand."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {
            "messages": dict(sorted(messages.items())),
            "schemas": dict(sorted(schemas.items())),
        },
    }


def render() -> str:
    return yaml.safe_dump(build_document(), sort_keys=False, allow_unicode=True, width=100)


async def print_asyncapi() -> int:
    print(render(), end="")
    return 0
