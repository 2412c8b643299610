"""Token counting and keeping a session's history inside the model's context window.

No tokenizer of the models behind the llm-gateway is available offline, so ``EstimateCounter``
uses a documented estimate: ``ceil(chars / 4)`` of everything the model reads in a message
(content, tool name, tool-call names and arguments) plus 4 tokens of per-message framing. Four
characters per token is the usual figure for English text with BPE tokenizers; it errs high on
code and JSON, which is the safe side for a window. A real tokenizer can replace it through the
``TokenCounter`` protocol without touching the loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from keel_agent_loop.domain.models import ChatMessage, ToolSpec
from keel_agent_loop.domain.prompts import MEMORY_MESSAGE_NAME
from keel_contracts.memo import IdentityMemo

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4


class TokenCounter(Protocol):
    def message(self, message: ChatMessage) -> int: ...

    def text(self, text: str) -> int: ...


class EstimateCounter:
    """``ceil(chars / 4)`` per text, plus 4 tokens per message."""

    def text(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def message(self, message: ChatMessage) -> int:
        chars = len(message.content) + len(message.name)
        chars += sum(len(c.name) + len(c.arguments_json) for c in message.tool_calls)
        return math.ceil(chars / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS


class CachingCounter:
    """Counts each message once, whatever counter is behind it.

    A session's whole history is fitted to the window before every model call, so without
    this every message was counted again at every step (twice: once to trim, once for the
    prompt): quadratic in a session's length, and a real tokenizer costs far more per message
    than the estimate. Messages are frozen, so a count never goes stale; an entry leaves with
    its message.
    """

    def __init__(self, inner: TokenCounter) -> None:
        self._inner = inner
        self._message = IdentityMemo[ChatMessage, int](inner.message)

    def text(self, text: str) -> int:
        return self._inner.text(text)

    def message(self, message: ChatMessage) -> int:
        return self._message(message)


def count_messages(counter: TokenCounter, messages: Sequence[ChatMessage]) -> int:
    return sum(counter.message(m) for m in messages)


def count_tools(counter: TokenCounter, tools: Sequence[ToolSpec]) -> int:
    """The catalog is part of every prompt, so it takes its share of the window."""
    return sum(counter.text(t.name + t.description + t.parameters_json_schema) + 4 for t in tools)


def protected_head(messages: Sequence[ChatMessage]) -> int:
    """How many leading messages are never trimmed: the system messages (the prompt), the first
    user message (the goal) and the recalled memory right after it (a user message named
    ``retrieved_memory``: data, not instructions, but the session was opened with it)."""
    for i, message in enumerate(messages):
        if message.role == "user":
            following = messages[i + 1] if i + 1 < len(messages) else None
            if following is not None and _is_memory(following):
                return i + 2
            return i + 1
    return len(messages)


def _is_memory(message: ChatMessage) -> bool:
    return message.role == "user" and message.name == MEMORY_MESSAGE_NAME


def turns(messages: Sequence[ChatMessage]) -> list[list[ChatMessage]]:
    """Group messages into units that are dropped together: an assistant message with tool
    calls and the tool results that answer it form one unit (a model API rejects a tool result
    without its call, and a call without its result)."""
    groups: list[list[ChatMessage]] = []
    for message in messages:
        if message.role == "tool" and groups and _open_call_group(groups[-1]):
            groups[-1].append(message)
        else:
            groups.append([message])
    return groups


def _open_call_group(group: list[ChatMessage]) -> bool:
    return group[0].role == "assistant" and bool(group[0].tool_calls)


def trim_history(
    messages: Sequence[ChatMessage], budget: int, counter: TokenCounter
) -> tuple[list[ChatMessage], int]:
    """Drop the oldest turns until the history fits ``budget`` tokens.

    Never drops the protected head (system prompt, memory, goal) or the most recent turn, so
    the result may still be over budget when those alone are; returns the kept messages and
    how many were dropped.
    """
    head_len = protected_head(messages)
    head = list(messages[:head_len])
    groups = turns(messages[head_len:])
    total = count_messages(counter, messages)
    dropped = 0
    while total > budget and len(groups) > 1:
        oldest = groups.pop(0)
        total -= count_messages(counter, oldest)
        dropped += len(oldest)
    return head + [m for g in groups for m in g], dropped


def fit_memories(items: Sequence[str], budget: int, counter: TokenCounter) -> list[str]:
    """Keep retrieved items, best first, while they fit the memory budget by this counter
    (the memory service trims by its own count; the window is measured by ours)."""
    kept: list[str] = []
    used = 0
    for item in items:
        cost = counter.text(item) + 1
        if used + cost > budget:
            break
        kept.append(item)
        used += cost
    return kept
