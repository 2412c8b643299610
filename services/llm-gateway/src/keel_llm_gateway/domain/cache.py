"""The response cache: the same deterministic question gets the stored answer, at no cost.

The key is the sha256 of the canonical JSON (sorted keys, no whitespace) of everything that
shapes the answer: model (or routing tier), messages, tools and sampling parameters, and the
tenant asking: an answer may carry one tenant's data (its memory, its tool outputs), so it is
never served to another tenant. The session is not in it: two sessions of one tenant asking the
same deterministic question share an answer. Only temperature-0 requests are cached unless a
request opts in: a sampled answer is one draw, and serving it again changes what the caller
asked for.
Personas are covered by the messages: a debater's stance is in its system message, so two
stances never share an answer (docs/plans.md). The seed is in the key too (null when unset):
two seeds are two draws, and a seeded sampled request that opts in gets back its own draw; the
agent loop still never opts a sampled call in.
Entries live ``ttl_s`` and the least recently used go first past ``max_entries``.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from keel_contracts.canonical import canonical_json, sha256_hex
from keel_llm_gateway.domain.models import ChatMessage, Completion, CompletionRequest, Usage


class CacheResult(enum.StrEnum):
    """The label values of ``keel_llm_cache_requests_total``."""

    HIT = "hit"
    MISS = "miss"
    BYPASS = "bypass"


def cache_key(request: CompletionRequest, model: str) -> str:
    """sha256 of ``canonical_json({"max_tokens", "messages", "model", "seed", "temperature",
    "tenant", "tools"})`` (an empty tenant is ``default``, as everywhere), written out with
    the keys in sorted order so each tool's canonical JSON (made once per tool) is reused
    rather than serialised again."""
    head = canonical_json(
        {
            "max_tokens": request.max_tokens,
            "messages": [_message(m) for m in request.messages],
            "model": model,
            "seed": request.seed,
            "temperature": request.temperature,
            "tenant": request.scope.tenant or "default",
        }
    )
    tools = ",".join(tool.canonical for tool in request.tools)
    return sha256_hex(f'{head[:-1]},"tools":[{tools}]}}')


def _message(message: ChatMessage) -> list[Any]:
    """A message as a JSON array of its fields in a fixed order (cheaper than a dump)."""
    calls = [[c.id, c.name, c.arguments_json] for c in message.tool_calls]
    return [message.role, message.content, calls, message.tool_call_id, message.name]


def cacheable(request: CompletionRequest) -> bool:
    return request.temperature == 0 or request.cache


class ResponseCache:
    """LRU with a time-to-live. Not locked: get and put never await, so under asyncio each runs
    whole."""

    def __init__(
        self, *, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError("a cache needs max_entries >= 1 and ttl_s > 0")
        self._max = max_entries
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Completion]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Completion | None:
        """The stored answer marked as cached and free, or None (an expired one is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, completion = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return completion

    def put(self, key: str, completion: Completion) -> None:
        self._entries[key] = (self._clock() + self._ttl_s, as_hit(completion))
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


def as_hit(completion: Completion) -> Completion:
    """What a hit returns: the same message and token counts (what the answer stands for, e.g.
    for the caller's context accounting), ``cached``, and a cost of 0. The gateway charges a
    hit to no budget and counts no tokens for it."""
    usage = completion.usage or Usage(prompt_tokens=0, completion_tokens=0)
    free = usage if usage.cost_usd == 0.0 else usage.model_copy(update={"cost_usd": 0.0})
    return completion.model_copy(update={"cached": True, "usage": free})
