"""The harness's Python layer, in-process: the syntax check and the module copies."""

import ast
import types

import pytest

from keel_tool_gateway.adapters.sandbox.harness import (
    ImportViolation,
    ModuleGate,
    check_source,
    forbidden_attribute,
)


@pytest.mark.parametrize(
    ("name", "forbidden"),
    [
        ("__class__", True),
        ("__globals__", True),
        ("__subclasses__", True),
        ("gi_frame", True),
        ("f_back", True),
        ("cell_contents", True),
        ("__init__", False),
        ("__name__", False),
        ("append", False),
        ("_private", False),
    ],
)
def test_forbidden_attributes(name: str, forbidden: bool) -> None:
    assert forbidden_attribute(name) is forbidden


def test_check_source_reports_each_forbidden_attribute_in_reading_order() -> None:
    tree = ast.parse("x = ().__class__.__mro__\nmatch x:\n    case object(__dict__=d): pass")
    assert check_source(tree) == [
        "access to attribute '__class__' is not allowed",
        "access to attribute '__mro__' is not allowed",
        "access to attribute '__dict__' is not allowed",
    ]
    assert check_source(ast.parse("import math\nprint(math.pi.__name__)")) == []


def test_gate_hands_out_public_copies_without_forbidden_modules() -> None:
    gate = ModuleGate(frozenset({"random", "json", "string"}))
    random = gate("random")
    assert isinstance(random, types.ModuleType)
    assert random.randint is __import__("random").randint
    assert not hasattr(random, "_os")
    json = gate("json", fromlist=("decoder",))
    assert isinstance(json.decoder, types.ModuleType)
    assert not hasattr(gate("string"), "Formatter")
    with pytest.raises(ImportViolation, match="import of 'os' is not allowed"):
        gate("os")
    with pytest.raises(ImportViolation, match="relative imports"):
        gate("json", level=1)
