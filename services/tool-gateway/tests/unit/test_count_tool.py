"""The crash tests' counting tool: one increment per run, even under concurrency."""

import asyncio
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.adapters.tools.count import increment, read_count
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.testing import StaticPolicy

CTX = RequestContext(session_id="s")


def service(directory: Path) -> ExecutionService:
    return ExecutionService(
        builtin_registry(test_tools_dir=directory), StaticPolicy("allow"), ResultLedger()
    )


def test_count_is_registered_only_with_a_directory(tmp_path: Path) -> None:
    assert builtin_registry().get("count") is None
    assert builtin_registry(test_tools_dir=tmp_path).get("count") is not None


def test_count_declares_what_a_second_run_would_do(tmp_path: Path) -> None:
    registry = builtin_registry(test_tools_dir=tmp_path)
    assert [
        (name, tool.effects) for name in ("count", "count_once") if (tool := registry.get(name))
    ] == [
        ("count", "idempotent"),
        ("count_once", "at_most_once"),
    ]


def test_a_key_applied_before_adds_nothing(tmp_path: Path) -> None:
    """What makes ``count`` idempotent: a run repeated with the same key (after a crash
    between the effect and the ledger) leaves the count as it was; other keys still count."""
    path = tmp_path / "k.count"
    assert [increment(path, "s:0:0"), increment(path, "s:0:0"), increment(path, "s:1:0")] == [
        1,
        1,
        2,
    ]
    assert increment(path) == 3  # no key: always counts
    assert read_count(path) == 3


async def test_each_run_adds_one_and_returns_the_new_value(tmp_path: Path) -> None:
    directory = tmp_path / "counts"  # created on first use
    gateway = service(directory)
    outputs = [
        (await gateway.execute(CTX, "count", '{"name": "apples"}', f"s:{i}:0")).output
        for i in range(3)
    ]
    assert outputs == ["1", "2", "3"]
    assert read_count(directory / "apples.count") == 3


async def test_a_replayed_key_does_not_count_again(tmp_path: Path) -> None:
    gateway = service(tmp_path)
    for _ in range(3):
        await gateway.execute(CTX, "count", '{"name": "x", "sleep_ms": 1}', "s:0:0")
    assert read_count(tmp_path / "x.count") == 1


async def test_concurrent_runs_never_lose_an_increment(tmp_path: Path) -> None:
    gateway = service(tmp_path)
    results = await asyncio.gather(
        *(
            gateway.execute(CTX, "count", '{"name": "c", "sleep_ms": 5}', f"s:{i}:0")
            for i in range(40)
        )
    )
    assert sorted(int(r.output) for r in results) == list(range(1, 41))
    assert read_count(tmp_path / "c.count") == 40


def test_processes_share_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "p.count"
    with ProcessPoolExecutor(4) as pool:
        values = list(pool.map(increment, [path] * 40, [f"k{i}" for i in range(40)]))
    assert sorted(values) == list(range(1, 41))
    assert read_count(path) == 40


async def test_names_that_could_escape_the_directory_are_refused(tmp_path: Path) -> None:
    gateway = service(tmp_path)
    for name in ("../x", "a/b", "", "x" * 65, "a.b"):
        result = await gateway.execute(CTX, "count", f'{{"name": "{name}"}}')
        assert result.status == "error", name
        assert result.error.startswith("invalid arguments for count: name: String should")
    too_long = await gateway.execute(CTX, "count", '{"name": "a", "sleep_ms": 5001}')
    assert too_long.error.startswith("invalid arguments for count: sleep_ms: Input should be")
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 - a test's tmp dir
