"""Say, for a person, which part of a diverging prompt changed.

The recording keeps digests, not prompts (a prompt holds the system prompt, which progress
events must not expose): each message's short digest points at the first message that
differs. Its recorded text comes from a baseline replay with the configuration the session ran
with, when one is available (``baseline``); without it the digests are all there is to show.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from keel_agent_loop.domain.models import ChatMessage
from keel_agent_loop.replay.ports import Prompt
from keel_agent_loop.replay.recording import RecordedStep
from keel_contracts.canonical import sha256_hex

DIFF_LINES = 24


def explain_prompt(
    recorded: RecordedStep,
    now: Prompt,
    baseline: Prompt | None,
    system_prompt_sha256: str = "",
) -> list[str]:
    """Lines naming what differs between the recorded prompt and ``now``."""
    lines: list[str] = []
    if now.tools_digest != recorded.tools_digest:
        lines.append(
            "the tool catalog differs from the one recorded "
            f"(digest {recorded.tools_digest[:12]}, now {now.tools_digest[:12]})"
        )
    digests = now.message_digests
    index = first_difference(recorded.message_digests, digests)
    if index is None:
        return lines
    if index >= len(now.messages):
        lines.append(f"message {index} of the recorded prompt is missing now")
        return lines
    message = now.messages[index]
    lines.append(f"message {index} ({message.role}) differs:")
    old = _baseline_message(baseline, recorded, index)
    if old is not None:
        lines += ["  " + line for line in message_diff(old, message)]
        return lines
    if index == 0 and message.role == "system" and system_prompt_sha256:
        now_sha = sha256_hex(message.content)
        lines.append(
            f"  the system prompt is not the one the session ran with "
            f"(sha256 {system_prompt_sha256[:12]}, now {now_sha[:12]})"
        )
    was = recorded.message_digests[index] if index < len(recorded.message_digests) else "(none)"
    lines.append(
        f"  recorded digest {was}, now {digests[index]}; "
        "the recorded text is not kept, this is the message now:"
    )
    lines += ["  + " + line for line in render_message(message)[:DIFF_LINES]]
    return lines


def first_difference(recorded: Sequence[str], now: Sequence[str]) -> int | None:
    for index, (a, b) in enumerate(zip(recorded, now, strict=False)):
        if a != b:
            return index
    if len(recorded) != len(now):
        return min(len(recorded), len(now))
    return None


def message_diff(old: ChatMessage, new: ChatMessage, limit: int = DIFF_LINES) -> list[str]:
    """A unified diff of two messages as text, cut to ``limit`` lines."""
    diff = list(
        difflib.unified_diff(
            render_message(old), render_message(new), "recorded", "replayed", n=1, lineterm=""
        )
    )
    if len(diff) > limit:
        diff = diff[:limit] + [f"… ({len(diff) - limit} more diff lines)"]
    return diff


def render_message(message: ChatMessage) -> list[str]:
    lines = message.content.splitlines() or [""]
    lines += [f"[tool call {c.name} {c.arguments_json}]" for c in message.tool_calls]
    return lines


def _baseline_message(
    baseline: Prompt | None, recorded: RecordedStep, index: int
) -> ChatMessage | None:
    """The recorded message, if the baseline provably rebuilt the recorded prompt."""
    if baseline is None or baseline.digest != recorded.prompt_digest:
        return None
    return baseline.messages[index] if index < len(baseline.messages) else None
