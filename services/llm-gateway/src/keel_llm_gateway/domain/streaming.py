"""Streams for providers (and cache hits) that have a whole answer rather than tokens."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import pairwise

from keel_llm_gateway.domain.models import (
    Completion,
    CompletionRequest,
    StreamEvent,
    TextDelta,
)

REPLAY_CHUNKS = 3


def split_text(text: str, parts: int) -> list[str]:
    """At most ``parts`` pieces cut at word starts; joined, they give back ``text`` exactly."""
    if not text:
        return []
    words = re.findall(r"\s*\S+\s*", text) or [text]
    count = min(parts, len(words))
    bounds = [len(words) * i // count for i in range(count + 1)]
    return ["".join(words[start:end]) for start, end in pairwise(bounds)]


async def replay(completion: Completion, chunks: int = REPLAY_CHUNKS) -> AsyncIterator[StreamEvent]:
    """A finished completion as a stream: its text in a few deltas, then itself."""
    for piece in split_text(completion.message.content, chunks):
        yield TextDelta(content=piece)
    yield completion


async def stream_by_completing(
    complete: Callable[[CompletionRequest], Awaitable[Completion]],
    request: CompletionRequest,
    chunks: int = REPLAY_CHUNKS,
) -> AsyncIterator[StreamEvent]:
    """A conforming ``Provider.stream`` for a provider that can only answer whole."""
    completion = await complete(request)
    async for event in replay(completion, chunks):
        yield event
