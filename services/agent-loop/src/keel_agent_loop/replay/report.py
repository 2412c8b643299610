"""Replay a recording and put the outcome into words: the lines ``keel replay`` prints."""

from __future__ import annotations

from dataclasses import dataclass

from keel_agent_loop.domain.loop import LoopConfig
from keel_agent_loop.domain.ports import LLMPort
from keel_agent_loop.replay.engine import ReplayReport, describe_ending, replay
from keel_agent_loop.replay.explain import explain_prompt
from keel_agent_loop.replay.ports import Prompt
from keel_agent_loop.replay.recording import Recording


@dataclass(frozen=True)
class ReplayVerdict:
    """A replay put into words: ``lines`` for a person, ``exit_code`` 0 when identical and 1
    at the first divergence (what ``keel replay`` exits with)."""

    lines: list[str]
    report: ReplayReport

    @property
    def exit_code(self) -> int:
        return 0 if self.report.identical else 1


async def replay_and_explain(
    recording: Recording,
    config: LoopConfig,
    *,
    live: LLMPort | None = None,
    baseline: LoopConfig | None = None,
) -> ReplayVerdict:
    """Replay with ``config`` (and the ``live`` model, if given). On a prompt divergence,
    ``baseline`` (the configuration the session ran with, when known) is replayed too, to
    show the recorded text of the message that changed."""
    report = await replay(recording, config, live)
    lines = [
        f"session {recording.session_id}: {len(recording.steps)} recorded step(s), "
        f"{describe_ending(recording.terminal)}"
    ]
    if recording.clipped_keys:
        lines.append(
            "  note: the ledger has no whole output for "
            + ", ".join(recording.clipped_keys)
            + " (replayed from the event's preview)"
        )
    divergence = report.divergence
    if divergence is None:
        steps = "step" if report.steps == 1 else "steps"
        lines.append(f"replayed {report.steps} {steps}, identical")
        return ReplayVerdict(lines, report)
    lines.append(f"diverged at step {divergence.step}: {divergence.summary}")
    if divergence.kind == "prompt" and divergence.prompt is not None:
        recorded = recording.steps[divergence.step - 1]
        before = await _baseline_prompt(recording, baseline, config, divergence.step)
        explained = explain_prompt(
            recorded, divergence.prompt, before, recording.system_prompt_sha256
        )
        lines += ["  " + line for line in explained]
    return ReplayVerdict(lines, report)


async def _baseline_prompt(
    recording: Recording, baseline: LoopConfig | None, config: LoopConfig, step: int
) -> Prompt | None:
    if baseline is None or baseline == config:
        return None
    rebuilt = await replay(recording, baseline)
    return rebuilt.prompts[step - 1] if len(rebuilt.prompts) >= step else None
