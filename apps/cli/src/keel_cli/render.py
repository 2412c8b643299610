"""How the keel command prints a session's progress for a person."""

from __future__ import annotations

import json
from typing import Any

from keel_contracts.events import Envelope, TaskCompleted, TaskFailed, TaskProgress


def describe(envelope: Envelope) -> str:
    if envelope.type == TaskCompleted.event_type:
        done = envelope.parse(TaskCompleted)
        return (
            f"  completed after {done.iterations} iteration(s) "
            f"({done.prompt_tokens}+{done.completion_tokens} tokens, ${done.cost_usd:.4f})"
        )
    if envelope.type == TaskFailed.event_type:
        failed = envelope.parse(TaskFailed)
        return f"  FAILED ({failed.reason}) after {failed.iterations} iteration(s): {failed.error}"
    if envelope.type == TaskProgress.event_type:
        step = envelope.parse(TaskProgress)
        return f"  [{step.iteration}] {_step(step.kind, step.detail)}"
    return f"  {envelope.type}"


def _step(kind: str, detail: dict[str, Any]) -> str:
    if kind == "started":
        return f"started: {detail.get('goal', '')!r}"
    if kind == "thought":
        calls = detail.get("tool_calls") or []
        said = _clip(str(detail.get("content") or ""))
        return f"thinking… {said}" + (f" (calls {', '.join(calls)})" if calls else "")
    if kind == "tool_call":
        return f"→ {detail.get('tool')} {_clip(str(detail.get('arguments', '')))}"
    if kind == "tool_result":
        status = detail.get("status", "?")
        text = detail.get("output") if status == "ok" else detail.get("error")
        return f"← {detail.get('tool')} {status}: {_clip(str(text or ''))}"
    if kind == "state":
        return f"· {detail.get('from')} → {detail.get('to')}"
    if kind == "resumed":
        return f"resumed from a checkpoint ({detail.get('status')}, by {detail.get('trigger')})"
    if kind == "approval_decided":
        return (
            f"approval {detail.get('outcome')} by {detail.get('reviewer')} for {detail.get('tool')}"
        )
    if kind == "completed":
        return f"done: {_clip(str(detail.get('answer', '')))}"
    if kind == "failed":
        return f"failed ({detail.get('reason')}): {_clip(str(detail.get('error', '')))}"
    if kind == "approval_requested":
        return f"⏸ approval requested for {detail.get('tool')} ({detail.get('approval_id')})"
    return f"{kind} {_clip(json.dumps(detail, ensure_ascii=False))}"


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
