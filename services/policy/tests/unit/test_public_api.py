"""The policy service's public API: the names applications (``keel policy``) may import.
Adding or removing one is a decision; this test makes it a visible one."""

from __future__ import annotations

import subprocess
import sys

import pytest

import keel_policy
from keel_policy.config import DEFAULT_POLICY

PUBLIC = [
    "ConditionTrace",
    "Explanation",
    "Finding",
    "PolicyBundle",
    "PolicyEngine",
    "PolicyFileError",
    "RuleTrace",
    "Verdict",
    "load_policy",
]


def test_the_public_names_are_pinned() -> None:
    assert sorted(keel_policy.__all__) == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_name_resolves(name: str) -> None:
    value = getattr(keel_policy, name)
    assert value is not None
    assert name in dir(keel_policy)
    # The implementation itself, from the module that owns it.
    assert value.__module__.startswith("keel_policy.")


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'PolicyHolder'"):
        _ = keel_policy.PolicyHolder  # type: ignore[attr-defined]


def test_the_public_names_decide_a_call() -> None:
    engine = keel_policy.PolicyEngine(keel_policy.load_policy(DEFAULT_POLICY))
    explanation = engine.explain("rm_rf", {}, "default", "")
    assert isinstance(explanation, keel_policy.Explanation)
    assert isinstance(explanation.verdict, keel_policy.Verdict)
    assert explanation.verdict.decision == "deny"


def test_importing_the_package_loads_none_of_it() -> None:
    code = (
        "import sys, keel_policy\n"
        "print(sorted(m for m in sys.modules if m.startswith('keel_policy.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["[]"]
