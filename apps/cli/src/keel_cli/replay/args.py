"""The arguments of ``keel replay``; apart from the command so that building the parser does
not import the agent loop (every ``keel`` invocation builds the whole parser)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def add_replay_parser(sub: Any) -> None:
    replay = sub.add_parser(
        "replay",
        help="re-run a session from its recorded model and tool outputs; report divergence",
    )
    replay.add_argument("session_id")
    replay.add_argument(
        "--system-prompt-file",
        type=Path,
        help="replay with this system prompt instead of the agent loop's configured one",
    )
    replay.add_argument(
        "--model",
        help="also ask this model (through the LLM gateway) at every step, with the recorded "
        "prompt, and report the first step whose answer differs",
    )
    replay.add_argument("--llm-target", default="127.0.0.1:50052", help="the LLM gateway")
    replay.add_argument("--timeout", type=float, default=120.0, help="per model call, seconds")
