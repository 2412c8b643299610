"""The shared vocabulary of chat: the pydantic twins of ``keel.common.v1`` messages.

The agent loop builds these, the LLM gateway sends them to providers; one definition keeps the
two sides from drifting apart.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class RequestContext(BaseModel):
    """Who is asking; sent with every call so other services can account, audit, authorise.

    The one form of the context on every side of every contract. A field the caller left
    empty on the wire arrives as "" (the defaults apply only where a context is built here).
    """

    model_config = ConfigDict(frozen=True)

    session_id: str = ""
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


class ToolSpec(BaseModel):
    """A tool as a model is offered it: the JSON schema of its arguments, as text."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters_json_schema: str = "{}"


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )


class LLMReply(BaseModel):
    """The LLM gateway's answer to one completion request."""

    model_config = ConfigDict(frozen=True)

    message: ChatMessage
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    provider: str = ""
    cached: bool = False
    finish_reason: str = ""
