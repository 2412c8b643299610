"""Local offline model: load time, prompt and generation tokens/s, tool-choice accuracy.

Prints numbers; asserts nothing. For each model (default: both catalog models) and each prompt
style (with and without the two example exchanges), it runs:

- verify + load: sha256 check of the GGUF file, then llama.cpp load;
- prompt tokens/s: a ~700-token prompt evaluated from an empty KV cache;
- generation tokens/s: 96 tokens of free text, timed from the first token to the last;
- tool choice: 10 varied requests against Keel's built-in tool catalog (a valid call to the
  right tool counts; "first try" = without the one retry) and 2 that need no tool;
- the demo task: "What is (17 * 23) + 4?" -> calculator call -> answer with 395.

Run: .venv/bin/python bench/local_model.py [--models qwen2.5-coder-0.5b ...] [--threads 2]
Needs llama-cpp-python (deploy/models/llama_wheel.sh) and the weights (deploy/models/fetch.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from keel_contracts.untrusted import mark_untrusted
from keel_llm_gateway.adapters.local_model import LocalModelProvider
from keel_llm_gateway.adapters.local_model_catalog import CATALOG, verify_file
from keel_llm_gateway.adapters.local_model_engine import Generation, LlamaEngine
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest, ToolSpec

SYSTEM = (
    "You are Keel, a careful and helpful agent. Work toward the user's goal step by step. "
    "Call the tools you are given when they help, one purpose per call, and give a plain, "
    "complete final answer once you have what you need."
)


def _schema(properties: dict[str, object], required: list[str]) -> dict[str, object]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


# Keel's built-in catalog as the tool gateway lists it (descriptions and schemas copied).
TOOLS = (
    ToolSpec(
        name="calculator",
        description="Evaluates an arithmetic expression exactly (integers stay exact) and "
        "returns the number as text.",
        parameters=_schema(
            {
                "expression": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 500,
                    "description": "Arithmetic expression: numbers, + - * / // % **, "
                    "parentheses, sqrt abs round min max floor ceil, pi, e. Example: (17 * 23) + 4",
                }
            },
            ["expression"],
        ),
    ),
    ToolSpec(
        name="clock",
        description="Current date and time as ISO-8601, in UTC or the given IANA time zone.",
        parameters=_schema(
            {
                "timezone": {
                    "anyOf": [{"type": "string", "maxLength": 64}, {"type": "null"}],
                    "default": None,
                    "description": "IANA time zone such as 'Europe/Paris'; UTC when omitted.",
                }
            },
            [],
        ),
    ),
    ToolSpec(
        name="http_fetch",
        description="Fetch a URL (GET or HEAD) from an allowed host; returns the status, final "
        "URL, content type and the body as text (capped).",
        parameters=_schema(
            {
                "url": {"type": "string", "description": "http or https URL on an allowed host."},
                "method": {"type": "string", "enum": ["GET", "HEAD"], "default": "GET"},
                "max_bytes": {"type": "integer", "minimum": 1, "default": 100000},
            },
            ["url"],
        ),
    ),
    ToolSpec(
        name="noop",
        description="Does nothing and returns 'ok'.",
        parameters={"type": "object", "properties": {}},
    ),
    ToolSpec(
        name="python",
        description="Runs a short Python program in an isolated sandbox and returns its printed "
        "output. No network, no files outside the working directory.",
        parameters=_schema(
            {
                "code": {
                    "type": "string",
                    "description": "A Python 3.11 program; print() what you want back.",
                },
                "stdin": {"type": "string", "default": ""},
            },
            ["code"],
        ),
    ),
    ToolSpec(
        name="send_email",
        description="Queue an email to one address (needs a person's approval).",
        parameters=_schema(
            {
                "to": {
                    "type": "string",
                    "pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                    "description": "One email address.",
                },
                "subject": {"type": "string", "description": "Subject line, one line of text."},
                "body": {"type": "string", "description": "Plain-text body."},
            },
            ["to", "subject", "body"],
        ),
    ),
)

# (request, the tool it needs or None)
CASES: tuple[tuple[str, str | None], ...] = (
    ("What is (17 * 23) + 4?", "calculator"),
    ("What time is it in Tokyo right now?", "clock"),
    ("Send an email to bob@example.com saying the build is green.", "send_email"),
    ("Fetch https://example.com and tell me its title.", "http_fetch"),
    ("What is the square root of 1764?", "calculator"),
    ("Run a Python program that prints the first 10 prime numbers.", "python"),
    ("How many seconds are there in 3.5 hours? Compute it exactly.", "calculator"),
    ("What is today's date in UTC?", "clock"),
    ("Email alice@example.org with subject 'Lunch' and body 'Are you free at noon?'", "send_email"),
    ("Do a HEAD request to https://example.org/status.", "http_fetch"),
    ("Say hello.", None),
    ("Write a haiku about autumn.", None),
)
LONG_PROMPT = "<|im_start|>user\n" + "Explain recursion with an example in Python. " * 70
FREE_TEXT = "<|im_start|>user\nWrite a long story about a robot.<|im_end|>\n<|im_start|>assistant\n"


@dataclass
class CountingEngine:
    """LlamaEngine that counts its generations (to tell first-try answers from retries)."""

    inner: LlamaEngine
    calls: int = 0

    def generate(self, prompt: str, **kwargs: object) -> Generation:
        self.calls += 1
        return self.inner.generate(prompt, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self.inner.close()


@dataclass
class Tally:
    right: int = 0
    first_try: int = 0
    no_tool_right: int = 0
    seconds: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def raw_speeds(engine: LlamaEngine) -> tuple[float, float]:
    """(prompt tokens/s from an empty cache, generation tokens/s)."""
    engine.reset()
    stamps: list[float] = []
    start = time.perf_counter()
    prompt = engine.generate(
        LONG_PROMPT + "<|im_end|>\n<|im_start|>assistant\n",
        max_tokens=1,
        temperature=0.0,
        on_text=lambda _: stamps.append(time.perf_counter()),
        cancel=threading.Event(),
    )
    prompt_rate = prompt.prompt_tokens / (time.perf_counter() - start)
    stamps.clear()
    generation = engine.generate(
        FREE_TEXT,
        max_tokens=96,
        temperature=0.0,
        on_text=lambda _: stamps.append(time.perf_counter()),
        cancel=threading.Event(),
    )
    generation_rate = (generation.completion_tokens - 1) / (stamps[-1] - stamps[0])
    return prompt_rate, generation_rate


async def tool_choice(provider: LocalModelProvider, counter: CountingEngine) -> Tally:
    tally = Tally()
    for goal, expected in CASES:
        messages = (
            ChatMessage(role="system", content=SYSTEM),
            ChatMessage(role="user", content=goal),
        )
        before = counter.calls
        start = time.perf_counter()
        answer = await provider.complete(CompletionRequest(messages=messages, tools=TOOLS))
        tally.seconds.append(time.perf_counter() - start)
        names = [call.name for call in answer.message.tool_calls]
        if expected is None:
            tally.no_tool_right += names == []
            if names:
                tally.misses.append(f"{goal!r} -> {names}")
            continue
        if names[:1] == [expected]:
            tally.right += 1
            tally.first_try += counter.calls - before == 1
        else:
            tally.misses.append(f"{goal!r} -> {names or answer.message.content[:60]!r}")
    return tally


async def demo(provider: LocalModelProvider) -> str:
    opening = (
        ChatMessage(role="system", content=SYSTEM),
        ChatMessage(role="user", content="What is (17 * 23) + 4?"),
    )
    first = await provider.complete(CompletionRequest(messages=opening, tools=TOOLS))
    if not first.message.tool_calls or first.message.tool_calls[0].name != "calculator":
        return f"FAIL (no calculator call: {first.message.content[:60]!r})"
    call = first.message.tool_calls[0]
    result = ChatMessage(
        role="tool", content=mark_untrusted("calculator", "395"), tool_call_id=call.id
    )
    second = await provider.complete(
        CompletionRequest(messages=(*opening, first.message, result), tools=TOOLS)
    )
    verdict = "ok" if "395" in second.message.content and not second.message.tool_calls else "FAIL"
    return f"{verdict}: {call.arguments_json} -> {second.message.content[:70]!r}"


async def bench_model(name: str, models_dir: Path, threads: int, n_ctx: int) -> None:
    entry = CATALOG[name]
    path = models_dir / entry.file
    verify_s = timed(lambda: verify_file(path, entry.sha256, size=entry.size))
    loaded: list[LlamaEngine] = []
    load_s = timed(lambda: loaded.append(LlamaEngine.load(path, n_ctx=n_ctx, n_threads=threads)))
    engine = loaded[0]
    prompt_rate, generation_rate = raw_speeds(engine)
    print(f"\n## {name}  (n_threads={threads}, n_ctx={n_ctx})")
    print(f"verify sha256 {verify_s:.2f} s | load {load_s:.2f} s")
    print(f"prompt {prompt_rate:.0f} tok/s (empty cache) | generation {generation_rate:.1f} tok/s")
    for few_shot in (False, True):
        counter = CountingEngine(engine)
        provider = LocalModelProvider(
            lambda c=counter: c,
            model=name,
            max_tokens=256,
            few_shot=few_shot,  # type: ignore[misc]
        )
        tally = await tool_choice(provider, counter)
        verdict = await demo(provider)
        tools_needed = sum(1 for _, expected in CASES if expected)
        print(
            f"few_shot={few_shot!s:5} | right tool, valid args {tally.right}/{tools_needed} "
            f"(first try {tally.first_try}) | no-tool requests answered in text "
            f"{tally.no_tool_right}/{len(CASES) - tools_needed} | per request "
            f"p50 {statistics.median(tally.seconds):.1f} s, max {max(tally.seconds):.1f} s"
        )
        print(f"  demo task: {verdict}")
        for miss in tally.misses:
            print(f"  miss: {miss}")
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=sorted(CATALOG), choices=sorted(CATALOG))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=4096)
    root = Path(os.environ.get("KEEL_CACHE_DIR") or Path.home() / ".cache" / "keel")
    parser.add_argument("--models-dir", type=Path, default=root / "models")
    args = parser.parse_args()
    print(f"# local model bench on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for name in args.models:
        asyncio.run(bench_model(name, args.models_dir, args.threads, args.n_ctx))
    print(json.dumps({"load_average_after": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
