"""The offline default model: a Qwen2.5-Coder GGUF on CPU through llama.cpp.

Generation is CPU-bound and takes seconds, so it never runs on the event loop: one worker
thread owns the model and requests queue for it (llama.cpp contexts are not thread-safe, and
two generations at once on two cores would only make both slower). A cancelled request stops
its generation at the next token.

Small models slip on format, so each answer goes through the shared parser
(``domain.output_parsing.parse_with_retry``): JSON tool calls are pulled out of fences and
tags and validated against the tool's schema, and one retry shows the model its mistake.
Usage counts every token the model read and wrote, the retry included, from its own tokenizer.

The weights are loaded on first use or by ``start()``, after their sha256 has matched the
pinned digest (see ``local_model_catalog``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from keel_llm_gateway.adapters.local_model_catalog import catalog_entry, verify_file
from keel_llm_gateway.adapters.local_model_engine import Engine, Generation, LlamaEngine
from keel_llm_gateway.adapters.local_prompt import build_prompt, reply_complete
from keel_llm_gateway.domain.models import (
    ChatMessage,
    Completion,
    CompletionRequest,
    StreamEvent,
    TextDelta,
    Usage,
)
from keel_llm_gateway.domain.output_parsing import parse_with_retry

EngineFactory = Callable[[], Engine]
# What a reply starts with when it is (probably) a tool call: held back from the stream.
_CALL_STARTS = ("<tool_call>", "```", "{", "[")
_CALL_MARKERS = ("<tool_call>", "```")


class LocalModelProvider:
    name = "local"

    def __init__(
        self, engine_factory: EngineFactory, *, model: str, max_tokens: int, few_shot: bool = False
    ) -> None:
        self._factory = engine_factory
        self._model = model
        self._max_tokens = max_tokens
        self._few_shot = few_shot
        self._engine: Engine | None = None
        self._load_lock = asyncio.Lock()
        self._running: set[threading.Event] = set()
        # One thread: requests queue here, so the model is never used by two at once.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keel-local-model")

    @classmethod
    def from_catalog(
        cls,
        model: str,
        models_dir: Path,
        *,
        model_path: Path | None = None,
        sha256: str = "",
        n_threads: int = 2,
        n_ctx: int = 8192,
        max_tokens: int = 512,
        few_shot: bool = False,
    ) -> LocalModelProvider:
        """A provider for a catalog model in ``models_dir``, or for an explicit ``model_path``
        (checked against ``sha256`` when given). Cheap: nothing is read until ``start()``."""
        if model_path is None:
            entry = catalog_entry(model)
            path, digest, size, label = models_dir / entry.file, entry.sha256, entry.size, model
        else:
            path, digest, size, label = model_path, sha256, None, model or model_path.stem

        def load() -> Engine:
            verify_file(path, digest, name=label if model_path is None else "", size=size)
            return LlamaEngine.load(path, n_ctx=n_ctx, n_threads=n_threads)

        return cls(load, model=label, max_tokens=max_tokens, few_shot=few_shot)

    async def start(self) -> None:
        """Verify and load the weights now (in the worker thread) rather than on first use."""
        await self._ready()

    async def complete(self, request: CompletionRequest) -> Completion:
        return await self._answer(request, None)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        task = asyncio.ensure_future(self._answer(request, queue.put_nowait))
        try:
            while not task.done() or not queue.empty():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield TextDelta(content=getter.result())
                else:
                    getter.cancel()
            yield task.result()
        finally:
            task.cancel()

    async def aclose(self) -> None:
        """Stop the running generation at its next token, drop queued ones, free the model."""
        for cancel in self._running:
            cancel.set()
        await asyncio.to_thread(self._worker.shutdown, wait=True, cancel_futures=True)
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    async def _answer(
        self, request: CompletionRequest, on_text: Callable[[str], None] | None
    ) -> Completion:
        engine = await self._ready()
        tally = _Tally()

        async def generate(messages: Sequence[ChatMessage]) -> str:
            gate = _StreamGate(on_text) if on_text is not None else None
            generation = await self._run(
                engine,
                build_prompt(messages, request.tools, few_shot=self._few_shot),
                max_tokens=request.max_tokens or self._max_tokens,
                temperature=request.temperature,
                seed=request.seed,
                on_text=gate.feed if gate is not None else None,
                # With tools, a reply ends with its first whole call (see reply_complete).
                stop_when=reply_complete if request.tools else None,
            )
            tally.add(generation)
            return generation.text

        parsed, _ = await parse_with_retry(generate, request, call_id_prefix="call")
        finish = "tool_calls" if parsed.tool_calls else tally.finish_reason
        return Completion(
            message=ChatMessage(
                role="assistant", content=parsed.content.strip(), tool_calls=parsed.tool_calls
            ),
            model=self._model,
            provider=self.name,
            usage=Usage(prompt_tokens=tally.prompt, completion_tokens=tally.completion),
            finish_reason=finish,
        )

    async def _ready(self) -> Engine:
        async with self._load_lock:
            if self._engine is None:
                loop = asyncio.get_running_loop()
                self._engine = await loop.run_in_executor(self._worker, self._factory)
            return self._engine

    async def _run(
        self,
        engine: Engine,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None,
        on_text: Callable[[str], None] | None,
        stop_when: Callable[[str], bool] | None,
    ) -> Generation:
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        emit: Callable[[str], None] | None = None
        if on_text is not None:
            sink = on_text

            def emit(piece: str) -> None:  # runs in the worker; hands the piece to the loop
                loop.call_soon_threadsafe(sink, piece)

        job = partial(
            engine.generate,
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            on_text=emit,
            cancel=cancel,
            stop_when=stop_when,
        )
        self._running.add(cancel)
        try:
            return await loop.run_in_executor(self._worker, job)
        except asyncio.CancelledError:
            cancel.set()  # the worker stops at the next token; queued requests then run
            raise
        finally:
            self._running.discard(cancel)


@dataclass
class _Tally:
    prompt: int = 0
    completion: int = 0
    finish_reason: str = "stop"

    def add(self, generation: Generation) -> None:
        self.prompt += generation.prompt_tokens
        self.completion += generation.completion_tokens
        self.finish_reason = "length" if generation.finish_reason == "length" else "stop"


@dataclass
class _StreamGate:
    """Passes prose on as it is generated and holds back what looks like a tool call, so a
    stream's deltas are answer text (the final ``Completion`` carries the parsed calls).

    Text that might be the start of a marker (``<tool`` ...) waits until the next piece says
    whether it is one.
    """

    sink: Callable[[str], None]
    seen: str = ""
    sent: int = 0
    closed: bool = False

    def feed(self, piece: str) -> None:
        self.seen += piece
        text = self.seen.lstrip()
        if self.closed or not text:
            return
        if self.sent == 0:
            if text.startswith(_CALL_STARTS):
                self.closed = True
                return
            if any(start.startswith(text) for start in _CALL_STARTS):
                return  # too short to tell
        found = [text.find(m) for m in _CALL_MARKERS if m in text]
        if found:
            cut, self.closed = min(found), True
        else:
            cut = len(text) - _marker_prefix_len(text)
        if cut > self.sent:
            self.sink(text[self.sent : cut])
            self.sent = cut


def _marker_prefix_len(text: str) -> int:
    """Length of the longest end of ``text`` that could grow into a call marker."""
    return max(
        (n for m in _CALL_MARKERS for n in range(1, len(m)) if text.endswith(m[:n])), default=0
    )
