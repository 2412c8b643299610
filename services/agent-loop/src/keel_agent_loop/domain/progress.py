"""Progress events of a session."""

from __future__ import annotations

from typing import Any

from keel_agent_loop.domain.models import ProgressKind
from keel_core.events import TaskProgress


def progress_event(kind: ProgressKind, iteration: int, detail: dict[str, Any]) -> TaskProgress:
    return TaskProgress(kind=kind, iteration=iteration, detail=detail)
