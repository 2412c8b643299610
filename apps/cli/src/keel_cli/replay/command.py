"""``keel replay <session>``: re-run a session from its record and report where it diverges.

The loop is configured as the agent loop would be now (``KEEL_AGENT_LOOP_*``: system prompt,
memory budget, context window), so the question answered is "would today's loop send the same
prompts?"; ``--system-prompt-file`` tries another system prompt, ``--model`` another model.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from keel_agent_loop.config import Settings as AgentLoopSettings
from keel_agent_loop.domain.loop import LoopConfig
from keel_cli.replay.live import GatewayModel
from keel_cli.replay.ports import ReplayAborted
from keel_cli.replay.recording import NotReplayable, Recording
from keel_cli.replay.report import Verdict, replay_and_explain
from keel_cli.replay.source import load_recording
from keel_contracts.canonical import sha256_hex
from keel_core.grpc import insecure_channel
from keel_core.settings import KafkaSettings


async def replay_command(kafka: KafkaSettings, args: argparse.Namespace) -> int:
    try:
        recording = await load_recording(kafka, args.session_id)
    except NotReplayable as exc:
        print(f"keel replay: cannot replay {args.session_id}: {exc}", file=sys.stderr)
        return 2
    configured = loop_config(AgentLoopSettings())
    config = configured
    if args.system_prompt_file is not None:
        try:
            prompt = args.system_prompt_file.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"keel replay: cannot read the system prompt: {exc}", file=sys.stderr)
            return 2
        config = dataclasses.replace(configured, system_prompt=prompt)
    baseline = _baseline(recording, configured)
    try:
        if args.model:
            async with insecure_channel(args.llm_target) as channel:
                live = GatewayModel(channel, args.model, args.timeout)
                verdict = await replay_and_explain(recording, config, live=live, baseline=baseline)
        else:
            verdict = await replay_and_explain(recording, config, baseline=baseline)
    except ReplayAborted as exc:
        print(f"keel replay: {exc}", file=sys.stderr)
        return 2
    _print(verdict, args.model)
    return verdict.exit_code


def loop_config(settings: AgentLoopSettings) -> LoopConfig:
    """The loop's configuration as ``keel_agent_loop.app`` builds it from the same settings."""
    return LoopConfig(
        settings.system_prompt,
        settings.memory_token_budget,
        context_window_tokens=settings.context_window_tokens,
        reply_reserve_tokens=settings.reply_reserve_tokens,
        checkpoint_every=settings.checkpoint_every,
    )


def _baseline(recording: Recording, configured: LoopConfig) -> LoopConfig | None:
    """The configured loop, when its system prompt is the one the session ran with: it then
    rebuilds the recorded prompts, whose text a divergence report can show."""
    if sha256_hex(configured.system_prompt) == recording.system_prompt_sha256:
        return configured
    return None


def _print(verdict: Verdict, model: str | None) -> None:
    for line in verdict.lines:
        print(line)
    if model and verdict.report.identical:
        print(f"  (model {model} gave the recorded answer at every step)")
