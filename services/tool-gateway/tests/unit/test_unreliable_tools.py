"""The fallback stack test's pair of tools: test-only, offered to the default profile, and
the failing one declares the answering one."""

from pathlib import Path

import pytest

from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.adapters.tools.unreliable import MIRROR, UNRELIABLE, QuestionInput
from keel_tool_gateway.domain.resilience.errors import RetryableToolError


def test_the_pair_is_registered_only_with_a_test_directory(tmp_path: Path) -> None:
    assert builtin_registry().get(UNRELIABLE) is None
    registry = builtin_registry(test_tools_dir=tmp_path)
    for name in (UNRELIABLE, MIRROR):
        assert registry.get(name) is not None
        assert registry.offered_to("default", name)


async def test_unreliable_fails_once_per_call_and_declares_the_mirror(tmp_path: Path) -> None:
    registry = builtin_registry(test_tools_dir=tmp_path)
    down, mirror = registry.get(UNRELIABLE), registry.get(MIRROR)
    assert down is not None
    assert mirror is not None
    assert down.fallbacks == (MIRROR,)
    assert down.resilience.max_attempts == 1
    with pytest.raises(RetryableToolError):
        await down.run(QuestionInput(question="q"))
    assert await mirror.run(QuestionInput(question="q")) == "mirror answer to q"
