"""The shared vocabulary of chat: the pydantic twins of ``keel.common.v1`` messages.

The agent loop builds these, the LLM gateway sends them to providers; one definition keeps the
two sides from drifting apart.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["system", "user", "assistant", "tool"]


class RequestContext(BaseModel):
    """Who is asking; sent with every call so other services can account, audit, authorise."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    agent_id: str = "agent"
    tenant: str = "default"
    agent_profile: str = "default"
    traceparent: str = ""


class ToolCall(BaseModel):
    """A tool invocation proposed by a model; arguments stay the JSON text the model wrote, for
    the tool gateway to validate."""

    model_config = ConfigDict(frozen=True)

    id: str = ""
    name: str
    arguments_json: str = "{}"


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    # For role "tool": the id of the call this message answers.
    tool_call_id: str = ""
    name: str = ""
