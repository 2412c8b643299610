"""A provider that answers from a script: completions, text, or errors to raise, in order."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable

from keel_llm_gateway.domain.models import (
    ChatMessage,
    Completion,
    CompletionRequest,
    StreamEvent,
    TextDelta,
    Usage,
)
from keel_llm_gateway.domain.streaming import split_text


def text_completion(
    text: str, *, provider: str = "fake", model: str = "fake-model", usage: Usage | None = None
) -> Completion:
    return Completion(
        message=ChatMessage(role="assistant", content=text),
        model=model,
        provider=provider,
        usage=usage,
    )


class FakeProvider:
    """Each call takes the next scripted reply (the last one repeats): a ``Completion`` is
    returned (with this provider's name), a ``str`` becomes a text answer, an exception is
    raised. ``delay_s`` is awaited first (``release()`` cuts it short); ``fail_mid_stream``
    raises after the first delta of a stream. Every request is kept in ``requests``."""

    def __init__(
        self,
        name: str = "fake",
        replies: Iterable[Completion | str | Exception] = ("ok",),
        *,
        delay_s: float = 0.0,
        fail_mid_stream: Exception | None = None,
    ) -> None:
        self.name = name
        self._replies: deque[Completion | str | Exception] = deque(replies)
        self.delay_s = delay_s
        self.fail_mid_stream = fail_mid_stream
        self.requests: list[CompletionRequest] = []
        self.closed = False
        self._release = asyncio.Event()

    def release(self) -> None:
        self._release.set()

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        if self.delay_s:
            try:
                await asyncio.wait_for(self._release.wait(), self.delay_s)
            except TimeoutError:
                pass
        reply = self._replies[0] if len(self._replies) == 1 else self._replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, str):
            return text_completion(reply, provider=self.name, model=request.model or "fake-model")
        return reply.model_copy(update={"provider": self.name})

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        completion = await self.complete(request)
        for index, piece in enumerate(split_text(completion.message.content, 4)):
            yield TextDelta(content=piece)
            if index == 0 and self.fail_mid_stream is not None:
                raise self.fail_mid_stream
        yield completion

    async def aclose(self) -> None:
        self.closed = True
