"""Keel agent loop: runs ReAct sessions from ``keel.tasks`` and serves the AgentService.

The names in ``__all__`` are the loop's public API for applications (the ``keel`` command):
its settings, plan validation and the plan shapes, session replay, and explaining a guards
file. Everything else is the service's own and may change without notice;
``tests/unit/test_public_api.py`` pins the list.

Names are resolved on first use (PEP 562): importing the package loads nothing, so each caller
pays only for what it names (``keel plan`` loads plans, ``keel replay`` loads replay, the service
loads neither through here), and no module inside the package can form an import cycle through
this file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keel_agent_loop.config import Settings
    from keel_agent_loop.errors import GuardsFileError
    from keel_agent_loop.guards import explain_guards
    from keel_agent_loop.plans import PlanInvalid, check_plan, debate, pipeline, sub_plan
    from keel_agent_loop.replay import (
        Divergence,
        NotReplayable,
        Recording,
        ReplayAborted,
        ReplayReport,
        ReplayVerdict,
        load_recording,
        replay_recording,
    )

__all__ = [
    "Divergence",
    "GuardsFileError",
    "NotReplayable",
    "PlanInvalid",
    "Recording",
    "ReplayAborted",
    "ReplayReport",
    "ReplayVerdict",
    "Settings",
    "check_plan",
    "debate",
    "explain_guards",
    "load_recording",
    "pipeline",
    "replay_recording",
    "sub_plan",
]

_HOME = {
    "Settings": "keel_agent_loop.config",
    "GuardsFileError": "keel_agent_loop.errors",
    "explain_guards": "keel_agent_loop.guards",
    **dict.fromkeys(
        ["PlanInvalid", "check_plan", "debate", "pipeline", "sub_plan"], "keel_agent_loop.plans"
    ),
    **dict.fromkeys(
        [
            "Divergence",
            "NotReplayable",
            "Recording",
            "ReplayAborted",
            "ReplayReport",
            "ReplayVerdict",
            "load_recording",
            "replay_recording",
        ],
        "keel_agent_loop.replay",
    ),
}

if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        home = _HOME.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
