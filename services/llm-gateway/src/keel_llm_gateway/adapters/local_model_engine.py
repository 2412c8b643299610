"""The blocking side of the local model: llama.cpp behind a tiny interface.

Everything here runs in the provider's single worker thread. The interface (``Engine``) is
small so the provider's concurrency, streaming, retry and accounting can be tested with a fake
engine, and so ``llama_cpp`` is imported only when a real model is loaded: the gateway starts
without llama-cpp-python installed when another provider is configured.
"""

from __future__ import annotations

import codecs
import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from keel_contracts.errors import FailedPrecondition, InvalidArgument

FinishReason = Literal["stop", "length", "cancelled"]
STOP_TEXTS = ("<|im_end|>", "<|endoftext|>")
# Tokens kept free at the end of the context so a prompt that only just fits can still answer.
MIN_REPLY_TOKENS = 16
# The seed of a request that names none: the one the model was always loaded with, so the offline
# model answers an unseeded request the same way every time (``make run``'s task and its tests
# depend on it; llama.cpp's own default, 0xFFFFFFFF, draws a random seed per sampler).
UNSEEDED = 0


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason


class Engine(Protocol):
    """A loaded model that turns a prompt into text, one call at a time (not thread-safe)."""

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        on_text: Callable[[str], None] | None,
        cancel: threading.Event,
        stop_when: Callable[[str], bool] | None = None,
        seed: int | None = None,
    ) -> Generation:
        """Generate until end of turn, ``max_tokens``, ``cancel`` or ``stop_when(text so far)``;
        ``seed`` fixes the sampler's draw (None: ``UNSEEDED``, the load-time seed)."""
        ...

    def close(self) -> None: ...


class LlamaEngine:
    """llama-cpp-python's ``Llama`` driven token by token.

    Token-level control gives exact usage from the model's own tokenizer, stops on the chat
    format's end-of-turn token rather than on a string match, honours cancellation between
    tokens, and keeps llama.cpp's prefix reuse: ``Llama.generate`` skips the part of the prompt
    already in its KV cache, so the long system turn is evaluated once, not per request.
    """

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self._n_ctx = int(llama.n_ctx())
        self._stops = {int(llama.token_eos())}
        for text in STOP_TEXTS:
            tokens = llama.tokenize(text.encode(), add_bos=False, special=True)
            if len(tokens) == 1:
                self._stops.add(int(tokens[0]))

    @classmethod
    def load(cls, path: Path, *, n_ctx: int, n_threads: int) -> LlamaEngine:
        # llama.cpp's CPU threads meet at a barrier after every layer; with OpenMP's default
        # (spin while waiting) they burn the cores they wait for as soon as anything else
        # runs, and generation on a busy 2-core machine fell from ~16 to ~1 token/s.
        # Sleeping waits cost little when idle. Read once, when libgomp loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            llama_cpp = importlib.import_module("llama_cpp")
        except ImportError as exc:
            raise FailedPrecondition(
                "llama-cpp-python is not installed (run deploy/models/llama_wheel.sh)"
            ) from exc
        llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_gpu_layers=0,
            seed=UNSEEDED,
            verbose=False,
        )
        return cls(llama)

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        on_text: Callable[[str], None] | None,
        cancel: threading.Event,
        stop_when: Callable[[str], bool] | None = None,
        seed: int | None = None,
    ) -> Generation:
        # The sampler is built per generate from the model's seed, so setting it here scopes it
        # to this request; an unseeded one goes back to the load-time seed rather than
        # inheriting the last request's.
        # llama.cpp seeds are 32-bit.
        self._llama.set_seed(UNSEEDED if seed is None else seed & 0xFFFFFFFF)
        tokens = self._llama.tokenize(prompt.encode(), add_bos=False, special=True)
        room = self._n_ctx - len(tokens)
        if room < MIN_REPLY_TOKENS:
            raise InvalidArgument(
                f"the prompt has {len(tokens)} tokens; the local model's context holds "
                f"{self._n_ctx} (raise KEEL_LLM_GATEWAY_LOCAL_N_CTX or send less history)"
            )
        limit = min(max_tokens, room)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        count = 0
        reason: FinishReason = "length"
        for token in self._llama.generate(tokens, temp=max(temperature, 0.0), top_k=40):
            if cancel.is_set():
                reason = "cancelled"
                break
            if token in self._stops:
                reason = "stop"
                break
            count += 1
            piece = decoder.decode(self._llama.detokenize([token]))
            if piece:
                pieces.append(piece)
                if on_text is not None:
                    on_text(piece)
                if stop_when is not None and stop_when("".join(pieces)):
                    reason = "stop"
                    break
            if count >= limit:
                break
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            if on_text is not None:
                on_text(tail)
        return Generation("".join(pieces), len(tokens), count, reason)

    def reset(self) -> None:
        """Forget the cached prompt, so the next one is evaluated in full (for benchmarks)."""
        self._llama.reset()

    def close(self) -> None:
        close = getattr(self._llama, "close", None)
        if close is not None:
            close()
