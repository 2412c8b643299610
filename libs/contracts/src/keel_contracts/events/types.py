"""Typed payloads of Keel events. The envelope's ``type`` is each class's ``event_type``."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from keel_contracts.events.envelope import EventData


class TaskSubmitted(EventData):
    event_type: ClassVar[str] = "keel.task.submitted"

    goal: str = Field(min_length=1, max_length=20_000)
    agent_profile: str = "default"
    agent_id: str = "agent"
    tenant: str = "default"
    max_iterations: int = Field(default=8, ge=1, le=200)
    # Per-session limits; None means the agent loop's configured default.
    token_budget: int | None = Field(default=None, ge=1)
    cost_budget_usd: float | None = Field(default=None, ge=0)
    metadata: dict[str, str] = Field(default_factory=dict)


class TaskProgress(EventData):
    """One step of a session, as it happens (for watchers; not needed to rebuild state)."""

    event_type: ClassVar[str] = "keel.task.progress"

    kind: Literal[
        "started",
        "state",
        "resumed",
        "thought",
        "tool_call",
        "tool_result",
        "approval_requested",
        "approval_decided",
        "history_trimmed",
        "completed",
        "failed",
        "cancelled",
    ]
    iteration: int
    detail: dict[str, Any] = Field(default_factory=dict)


class TaskCompleted(EventData):
    event_type: ClassVar[str] = "keel.task.completed"

    answer: str
    iterations: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class TaskFailed(EventData):
    event_type: ClassVar[str] = "keel.task.failed"

    # infrastructure: a Keel service the session needs stayed unreachable past the operator's
    # limit (not a tool's error: the model never saw the outage).
    reason: Literal["iteration_limit", "error", "cancelled", "budget", "infrastructure"]
    error: str
    iterations: int


class ApprovalRequested(EventData):
    event_type: ClassVar[str] = "keel.approval.requested"

    approval_id: str
    agent_id: str
    tool_name: str
    arguments: dict[str, Any]
    reasoning: str = ""
    idempotency_key: str
    deadline: str = ""
    # What running the call would do, in words a reviewer can judge.
    consequences: str = ""
    # The JSON schema of the tool's arguments, as the model was shown it: arguments a reviewer
    # modifies are validated against it before the decision is accepted. {} = not known.
    arguments_schema: dict[str, Any] = Field(default_factory=dict)
    # The requesting session's tenant: the decision is bound to it ("" from older writers).
    tenant: str = ""


class ApprovalVoted(EventData):
    """One reviewer's approval toward an N-of-M quorum that it does not complete: the request
    stays pending. Published on ``keel.approval.decisions`` (key = session id) so a restarted
    approval service keeps the votes; the agent loop lets it pass and waits for the decision."""

    event_type: ClassVar[str] = "keel.approval.voted"

    approval_id: str
    reviewer: str
    comment: str = ""
    # Every reviewer who has approved so far, this one last.
    approvals: list[str]
    required: int = Field(ge=2)
    # The session the vote belongs to (signed, unlike the envelope's) and the approval
    # service's Ed25519 signature over the rest (``keel_contracts.approvals``); "" = unsigned.
    session_id: str = ""
    signature: str = ""


class ApprovalDecided(EventData):
    """A decision, signed by the approval service and bound to exactly one call: the session,
    tenant and agent that asked, the tool, the idempotency key and the hash of the arguments
    asked for, until ``expires_at``. Every reader verifies the signature and the binding
    (``keel_contracts.approvals``) before acting on it; the binding fields default to "" only
    so that records of older writers still parse (they fail verification)."""

    event_type: ClassVar[str] = "keel.approval.decided"

    approval_id: str
    outcome: Literal["approved", "rejected", "modified", "timed_out"]
    reviewer: str
    comment: str = ""
    modified_arguments: dict[str, Any] | None = None
    session_id: str = ""
    tenant: str = ""
    agent_id: str = ""
    tool_name: str = ""
    idempotency_key: str = ""
    # sha256 of the canonical JSON of the arguments the agent asked to run with.
    arguments_hash: str = ""
    # ISO 8601 (UTC): the approval may not be acted on after this.
    expires_at: str = ""
    signature: str = ""


class ApprovalIntended(EventData):
    """One reviewer's action on a request (approve, reject, modify) or the deadline sweeper's
    time-out, as one approval replica took it: not a decision. Published on
    ``keel.approval.intents`` (key = session id, so one approval's intents are totally
    ordered); every approval replica folds them in log order and the first that completes the
    request (a terminal intent, or the vote that reaches the quorum) becomes the one
    ``ApprovalDecided`` (ADR 0014). Signed like a decision; only approval replicas read it."""

    event_type: ClassVar[str] = "keel.approval.intended"

    approval_id: str
    outcome: Literal["approve", "reject", "modify", "time_out"]
    reviewer: str
    comment: str = ""
    modified_arguments: dict[str, Any] | None = None
    session_id: str = ""
    signature: str = ""


class AuditRecord(EventData):
    """An append-only fact about a decision. ``prev_hash`` chains each producer's records, so
    removing or editing one breaks the chain (checked by ``keel audit verify``).

    A producer is one run of one service (``<identity>@<run id>``); a run's first record links
    to the last hash its identity wrote before (``prev_producer``/``prev_hash``), so a removed
    run shows. ``signature`` (Ed25519, the identity's audit key) covers this record and its
    envelope's fields; ``envelope_digest`` lets the verifier say which of the two was edited.
    The three newer fields are empty on records written without trust material.
    """

    event_type: ClassVar[str] = "keel.audit.record"

    producer: str
    sequence: int
    action: str
    actor: str
    subject: str
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str
    identity: str = ""
    prev_producer: str = ""
    envelope_digest: str = ""
    signature: str = ""


class AuditChainHead(EventData):
    """The last acknowledged record of one audit producer (run), signed by its identity and
    written periodically and at stop to ``keel.audit.heads`` (compacted, keyed by identity):
    a chain whose tail was cut no longer reaches its signed head."""

    event_type: ClassVar[str] = "keel.audit.head"

    identity: str
    producer: str
    sequence: int
    hash: str
    signature: str = ""


class TaskCancelRequested(EventData):
    """Asks the agent loop to stop a session. Sent to ``keel.tasks`` (durable, reaches a session
    that is waiting or not started) and ``keel.control`` (every replica, reaches a running one)."""

    event_type: ClassVar[str] = "keel.task.cancel_requested"

    reason: str = ""
    requested_by: str = ""


class SessionCheckpoint(EventData):
    """The whole state of a session, on the compacted ``keel.checkpoints`` (key = session id)."""

    event_type: ClassVar[str] = "keel.session.checkpoint"

    status: str
    iteration: int
    state: dict[str, Any]


class SessionFinished(EventData):
    """The durable end of a session on the compacted ``keel.checkpoints`` (key = session id),
    written in place of its last checkpoint: a redelivered task, decision or cancel finds it
    and runs nothing. ``result`` is the result's envelope exactly as it goes to
    ``keel.results`` (same id), so completing an interrupted finish republishes the identical
    record. ``state`` (the terminal session state, for the finish hooks) is kept only until
    the finish is ``done``. Tombstoned by the agent loop after a grace period."""

    event_type: ClassVar[str] = "keel.session.finished"

    status: str
    result: dict[str, Any]
    state: dict[str, Any] = Field(default_factory=dict)
    done: bool = False


class SessionSummary(EventData):
    """The latest summary of a session on the compacted ``keel.sessions`` (key = session id),
    written by the front door that accepted it and by the replica running it at each change of
    status: every agent-loop replica follows the topic, so any of them answers ``Get`` and
    ``Cancel`` for any session, after any restart (ADR 0013). ``result`` is the result's
    envelope as it went to ``keel.results`` (empty until the session finished)."""

    event_type: ClassVar[str] = "keel.session.summary"

    status: str
    tenant: str = ""
    iteration: int = 0
    answer: str = ""
    error: str = ""
    failure_reason: str = ""
    trace: str = ""
    result: dict[str, Any] = Field(default_factory=dict)


class ToolCallStarted(EventData):
    """An intent in the ledger (same topic and key as the result that replaces it): a tool
    that cannot deduplicate its own effect is about to run. A key that still holds an intent
    once ``deadline`` has passed was cut short by a crash between the effect and its result,
    so it is never run again (at most once): it is answered as an outcome unknown."""

    event_type: ClassVar[str] = "keel.tool.call_started"

    idempotency_key: str
    tool: str
    fingerprint: str
    # The gateway process that runs it (one id per process start).
    instance: str
    # Seconds since the epoch: the run is over (done, or its process dead) by then.
    deadline: float
    # Whose call it is: an intent answers only its own tenant and session ("" in records
    # written before they were bound).
    tenant: str = ""
    session_id: str = ""
    # HMAC with the tool gateway's ledger key over the canonical record (this field left out,
    # the key included): an intent without a valid one was written by someone else and is
    # ignored. "" in the insecure dev mode.
    mac: str = ""


class ToolResultRecorded(EventData):
    """A finished tool call in the ledger on the compacted ``keel.tool-results`` (key = the
    idempotency key): a repeated key is answered from here instead of acting again."""

    event_type: ClassVar[str] = "keel.tool.result_recorded"

    idempotency_key: str
    tool: str
    fingerprint: str
    status: Literal["ok", "error", "denied"]
    output: str = ""
    error: str = ""
    rule_id: str = ""
    duration_ms: float = 0.0
    truncated: bool = False
    # Whose call it answered: a hit for another tenant or session is refused as a key reuse
    # ("" in records written before they were bound).
    tenant: str = ""
    session_id: str = ""
    # HMAC with the tool gateway's ledger key over the canonical record (this field left out,
    # the key included): a record without a valid one was written by someone else and is
    # never answered. "" in the insecure dev mode.
    mac: str = ""
