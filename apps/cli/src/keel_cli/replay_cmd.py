"""``keel replay <session>``: re-run a session from its record and report where it diverges.

The replay itself is the agent loop's (``keel_agent_loop.replay_recording``): the loop is
configured as the agent loop would be now (``KEEL_AGENT_LOOP_*``: system prompt, memory budget,
context window), so the question answered is "would today's loop send the same prompts?";
``--system-prompt-file`` tries another system prompt, ``--model`` another model. This module
only parses arguments and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel_core.settings import KafkaSettings

if TYPE_CHECKING:
    from keel_agent_loop import ReplayVerdict


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


async def replay_command(kafka: KafkaSettings, args: argparse.Namespace) -> int:
    # Imported here: building the parser (every ``keel`` invocation) must not load the loop.
    from keel_agent_loop import (
        NotReplayable,
        ReplayAborted,
        Settings,
        load_recording,
        replay_recording,
    )

    try:
        recording = await load_recording(kafka, args.session_id)
    except NotReplayable as exc:
        print(f"keel replay: cannot replay {args.session_id}: {exc}", file=sys.stderr)
        return 2
    settings = Settings()
    system_prompt: str | None = None
    if args.system_prompt_file is not None:
        try:
            system_prompt = args.system_prompt_file.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"keel replay: cannot read the system prompt: {exc}", file=sys.stderr)
            return 2
    try:
        verdict = await replay_recording(
            recording,
            settings,
            system_prompt=system_prompt,
            model=args.model,
            llm_target=args.llm_target,
            timeout_s=args.timeout,
        )
    except ReplayAborted as exc:
        print(f"keel replay: {exc}", file=sys.stderr)
        return 2
    _print(verdict, args.model)
    return verdict.exit_code


def _print(verdict: ReplayVerdict, model: str | None) -> None:
    for line in verdict.lines:
        print(line)
    if model and verdict.report.identical:
        print(f"  (model {model} gave the recorded answer at every step)")
