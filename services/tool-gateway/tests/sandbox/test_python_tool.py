"""The python tool doing its job, its input model, and a probe through the gateway's path."""

import json
from typing import Any

import pytest
from pydantic import ValidationError

from keel_tool_gateway.adapters.sandbox import SnippetFailed
from keel_tool_gateway.adapters.tools.python_exec import python_tool
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.domain.registry import ToolRegistry
from keel_tool_gateway.testing import StaticPolicy

from .conftest import FAST, call

TOOL = python_tool(FAST)
CTX = RequestContext(session_id="s1", agent_id="a1", agent_profile="default")


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize(
    ("arguments", "output"),
    [
        ({"code": "print(17 * 23 + 4)"}, "395\n"),
        ({"code": "print(2 ** 200)"}, f"{2**200}\n"),
        (
            {"code": "import json\nprint(json.dumps({'b': [1, 2], 'a': None}, sort_keys=True))"},
            '{"a": null, "b": [1, 2]}\n',
        ),
        ({"code": "x = 1"}, "(no output)"),
        (
            {"code": "print(input().upper())\nprint(read_stdin().split())", "stdin": "hi\na b\nc"},
            "HI\n['a', 'b', 'c']\n",
        ),
        (
            {
                "code": "import statistics, math\n"
                "print(statistics.mean([1, 2, 3, 4]), math.gcd(12, 18))"
            },
            "2.5 6\n",
        ),
        (
            {
                "code": "from collections import Counter\n"
                "print(Counter('abracadabra').most_common(2))"
            },
            "[('a', 5), ('b', 2)]\n",
        ),
        (
            {"code": "import collections.abc\nprint(isinstance([], collections.abc.Sequence))"},
            "True\n",
        ),
        (
            {
                "code": "from itertools import permutations\n"
                "print(len(list(permutations(range(5)))))"
            },
            "120\n",
        ),
        ({"code": "import re\nprint(re.findall(r'\\d+', 'a1b22c333'))"}, "['1', '22', '333']\n"),
        (
            {
                "code": "from fractions import Fraction\nfrom decimal import Decimal\n"
                "print(Fraction(1, 3) + Fraction(1, 6), Decimal('0.1') + Decimal('0.2'))"
            },
            "1/2 0.3\n",
        ),
        (
            {
                "code": "import datetime\n"
                "print(datetime.datetime.strptime('2024-02-29', '%Y-%m-%d').date() "
                "+ datetime.timedelta(days=1))"
            },
            "2024-03-01\n",
        ),
        (
            {
                "code": "import random\nrandom.seed(7)\n"
                "print(len({random.randint(1, 6) for _ in range(100)}))"
            },
            "6\n",
        ),
        (
            {
                "code": "class P:\n    def __init__(self, x):\n        self.x = x\n"
                "    def __repr__(self):\n        return f'P({self.x})'\n"
                "class Q(P):\n    def __init__(self):\n        super().__init__(9)\n"
                "print(Q(), type(Q()).__name__, getattr(Q(), 'x'))"
            },
            "P(9) Q 9\n",
        ),
        (
            {
                "code": "with open('notes.txt', 'w') as f:\n    f.write('kept')\n"
                "print(open('notes.txt').read())"
            },
            "kept\n",
        ),
        (
            {
                "code": "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
                "print(fib(20))"
            },
            "6765\n",
        ),
    ],
)
async def test_snippets_run_and_print(arguments: dict[str, Any], output: str) -> None:
    assert await call(TOOL, **arguments) == output


@pytest.mark.usefixtures("isolated")
async def test_stderr_is_returned_after_stdout() -> None:
    code = "print('out')\nimport math\nx = [print(i) for i in range(2)]"
    assert await call(TOOL, code=code) == "out\n0\n1\n"


@pytest.mark.usefixtures("isolated")
async def test_an_exception_is_an_error_with_the_traceback() -> None:
    with pytest.raises(SnippetFailed) as caught:
        await call(TOOL, code="print('partial')\n{}['missing']")
    message = str(caught.value)
    assert message.startswith("sandbox: the snippet failed (exit status 1):")
    assert 'File "<snippet>", line 2' in message
    assert "KeyError: 'missing'" in message
    # Only the snippet's frames: nothing of the harness.
    assert "harness" not in message
    assert 'File "<string>"' not in message


@pytest.mark.usefixtures("isolated")
async def test_syntax_error_is_an_error() -> None:
    with pytest.raises(SnippetFailed, match="SyntaxError"):
        await call(TOOL, code="def (:")


@pytest.mark.usefixtures("isolated")
async def test_sys_exit_zero_is_success_and_non_zero_a_failure() -> None:
    assert await call(TOOL, code="print('a')\nraise SystemExit(0)") == "a\n"
    with pytest.raises(SnippetFailed, match="exit status 1"):
        await call(TOOL, code="raise SystemExit(5)")


def test_input_model_bounds_the_timeout_by_the_configured_wall_clock() -> None:
    model = TOOL.input_model
    schema = model.model_json_schema()
    assert set(schema["properties"]) == {"code", "stdin", "timeout_s"}
    assert schema["required"] == ["code"]
    model.model_validate({"code": "x", "timeout_s": FAST.wall_timeout_s})
    for bad in (
        {"code": "x", "timeout_s": FAST.wall_timeout_s + 0.1},
        {"code": "x", "timeout_s": 0},
        {"code": ""},
        {"code": "x", "extra": 1},
    ):
        with pytest.raises(ValidationError):
            model.model_validate(bad)


def test_tool_time_out_leaves_room_for_the_sandbox_to_report_its_own() -> None:
    assert TOOL.name == "python"
    assert TOOL.timeout_s is not None
    assert TOOL.timeout_s > FAST.wall_timeout_s
    assert "json" in TOOL.description
    assert "No network" in TOOL.description


def _service() -> ExecutionService:
    registry = ToolRegistry()
    registry.register(python_tool(FAST))
    return ExecutionService(registry, StaticPolicy("allow"), ResultLedger(100))


@pytest.mark.usefixtures("isolated")
async def test_a_probe_comes_back_as_status_error_through_the_gateway() -> None:
    service = _service()
    result = await service.execute(CTX, "python", json.dumps({"code": "import os"}), "s1:0:0")
    assert result.status == "error"
    assert result.error == "python failed: sandbox: import of 'os' is not allowed"
    assert result.output == ""
    # Recorded like any result: the same key replays it without running again.
    again = await service.execute(CTX, "python", json.dumps({"code": "import os"}), "s1:0:0")
    assert (again.status, again.replayed, again.error) == ("error", True, result.error)


@pytest.mark.usefixtures("isolated")
async def test_a_snippet_runs_through_the_gateway() -> None:
    result = await _service().execute(CTX, "python", json.dumps({"code": "print(6 * 7)"}))
    assert (result.status, result.output, result.untrusted) == ("ok", "42\n", True)


async def test_policy_still_decides_before_anything_runs() -> None:
    registry = ToolRegistry()
    registry.register(python_tool(FAST))
    policy = StaticPolicy(per_tool={"python": "deny"})
    service = ExecutionService(registry, policy, ResultLedger(100))
    result = await service.execute(CTX, "python", json.dumps({"code": "print(1)"}))
    assert result.status == "denied"
    # Policy judges the call as it would run: the tool's defaults filled in.
    assert policy.calls[0].arguments == {"code": "print(1)", "stdin": "", "timeout_s": None}


@pytest.mark.usefixtures("isolated")
async def test_c_code_that_imports_lazily_still_works() -> None:
    code = (
        "import datetime, time\n"
        "print(datetime.date.today().year > 2000,"
        " datetime.datetime.now().timetuple().tm_year > 2000)\n"
        "print(datetime.datetime(2024, 1, 2).strftime('%d.%m'), time.time() > 0)"
    )
    assert await call(TOOL, code=code) == "True True\n02.01 True\n"
