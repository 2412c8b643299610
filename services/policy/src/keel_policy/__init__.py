"""Keel policy service: deny-by-default, priority-ordered rules on every tool call.

The names in ``__all__`` are the service's public API for applications (``keel policy test``
and ``keel policy check`` run the service's own engine in-process, so their answer is the one
the service would give): load a policy file or directory into a bundle, build the engine
from it, read its verdict and explanation (given provenance ``Finding``s as a caller sends
them). Everything else is the service's own; ``tests/unit/test_public_api.py`` pins the list.

Names are resolved on first use (PEP 562): importing the package loads nothing, and no module
inside the package can form an import cycle through this file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keel_policy.adapters.policy_file import load_policy
    from keel_policy.domain.engine import PolicyEngine
    from keel_policy.domain.models import PolicyBundle
    from keel_policy.domain.provenance import Finding
    from keel_policy.domain.results import ConditionTrace, Explanation, RuleTrace, Verdict
    from keel_policy.errors import PolicyFileError

__all__ = [
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

_HOME = {
    "load_policy": "keel_policy.adapters.policy_file",
    "PolicyEngine": "keel_policy.domain.engine",
    "PolicyBundle": "keel_policy.domain.models",
    "Finding": "keel_policy.domain.provenance",
    **dict.fromkeys(
        ["ConditionTrace", "Explanation", "RuleTrace", "Verdict"], "keel_policy.domain.results"
    ),
    "PolicyFileError": "keel_policy.errors",
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
