"""The agent loop's domain: session state, the ReAct loop and its ports. No grpc or kafka."""

from keel_agent_loop.domain.loop import AgentLoop, LoopConfig
from keel_agent_loop.domain.models import (
    AgentState,
    ChatMessage,
    LLMReply,
    RequestContext,
    ToolCall,
    ToolOutcome,
    ToolSpec,
    Usage,
)
from keel_agent_loop.domain.ports import EventSink, LLMPort, LoopObserver, MemoryPort, ToolPort
from keel_agent_loop.domain.sessions import RecordedEvent, SessionRecord, SessionStore

__all__ = [
    "AgentLoop",
    "AgentState",
    "ChatMessage",
    "EventSink",
    "LLMPort",
    "LLMReply",
    "LoopConfig",
    "LoopObserver",
    "MemoryPort",
    "RecordedEvent",
    "RequestContext",
    "SessionRecord",
    "SessionStore",
    "ToolCall",
    "ToolOutcome",
    "ToolPort",
    "ToolSpec",
    "Usage",
]
