"""How the keel command prints a session's progress for a person."""

from __future__ import annotations

import json
from typing import Any

from keel_core.events import Envelope, TaskCompleted, TaskFailed, TaskProgress


def describe(envelope: Envelope) -> str:
    if envelope.type == TaskCompleted.event_type:
        done = envelope.parse(TaskCompleted)
        return (
            f"  completed after {done.iterations} iteration(s) "
            f"({done.prompt_tokens}+{done.completion_tokens} tokens)"
        )
    if envelope.type == TaskFailed.event_type:
        failed = envelope.parse(TaskFailed)
        return f"  FAILED ({failed.reason}) after {failed.iterations} iteration(s): {failed.error}"
    if envelope.type == TaskProgress.event_type:
        step = envelope.parse(TaskProgress)
        return f"  [{step.iteration}] {step.kind:<18} {_short(step.detail)}"
    return f"  {envelope.type}"


def _short(detail: dict[str, Any], limit: int = 160) -> str:
    text = json.dumps(detail, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"
