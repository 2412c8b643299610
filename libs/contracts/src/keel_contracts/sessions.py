"""Sessions as the agent loop's front door (``AgentService``) reports them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# "unknown": a status this client does not know.
SessionStatusView = Literal["pending", "running", "completed", "failed", "cancelled", "unknown"]


class TaskRequest(BaseModel):
    """What ``Submit`` takes: a caller-chosen ``session_id`` makes it idempotent."""

    model_config = ConfigDict(frozen=True)

    goal: str
    session_id: str = ""
    agent_profile: str = ""
    tenant: str = ""
    max_iterations: int = 0
    metadata: dict[str, str] = Field(default_factory=dict)


class SessionView(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_id: str
    status: SessionStatusView
    answer: str = ""
    error: str = ""
    iterations: int = 0

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


class SessionEvent(BaseModel):
    """One progress event; ``detail_json`` is the event's own data."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    type: str
    iteration: int = 0
    detail_json: str = ""
    time: str = ""
    # What a client resumes after (``AgentClient.stream_events(after_event_id=...)``).
    event_id: str = ""
