"""The agent loop's public API: the names applications (the ``keel`` command) may import.
Adding or removing one is a decision; this test makes it a visible one."""

from __future__ import annotations

import subprocess
import sys

import pytest

import keel_agent_loop

PUBLIC = [
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


def test_the_public_names_are_pinned() -> None:
    assert sorted(keel_agent_loop.__all__) == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_name_resolves(name: str) -> None:
    value = getattr(keel_agent_loop, name)
    assert value is not None
    assert name in dir(keel_agent_loop)
    # The implementation itself, from the module that owns it.
    assert value.__module__.startswith("keel_agent_loop.")


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'AgentLoop'"):
        _ = keel_agent_loop.AgentLoop  # type: ignore[attr-defined]


def test_importing_the_package_loads_none_of_it() -> None:
    """``import keel_agent_loop`` starts nothing and loads no submodule (no cycles possible);
    naming a plan helper does not load replay."""
    code = (
        "import sys, keel_agent_loop\n"
        "print(sorted(m for m in sys.modules if m.startswith('keel_agent_loop.')))\n"
        "from keel_agent_loop import check_plan\n"
        "print('keel_agent_loop.replay' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["[]", "False"]
