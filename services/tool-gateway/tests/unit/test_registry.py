import pytest

from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.errors import DuplicateTool
from keel_tool_gateway.testing import CountingTool


def test_catalog_lists_builtins_with_json_schemas() -> None:
    catalog = {entry.name: entry for entry in builtin_registry(7.0).catalog()}
    assert sorted(catalog) == ["calculator", "clock", "noop"]
    calc = catalog["calculator"].parameters_schema
    assert calc["type"] == "object"
    assert calc["required"] == ["expression"]
    assert calc["properties"]["expression"]["type"] == "string"
    assert calc["properties"]["expression"]["maxLength"] == 500
    assert calc["additionalProperties"] is False
    clock = catalog["clock"].parameters_schema
    assert "required" not in clock
    assert "timezone" in clock["properties"]
    assert catalog["calculator"].timeout_s == 2.0
    assert catalog["clock"].timeout_s == 7.0
    assert all(entry.description for entry in catalog.values())


def test_duplicate_names_are_refused() -> None:
    registry = builtin_registry()
    with pytest.raises(DuplicateTool, match="calculator"):
        registry.register(CountingTool(name="calculator").tool)


def test_lookup() -> None:
    registry = builtin_registry()
    assert registry.get("noop") is not None
    assert registry.get("send_email") is None
    assert len(registry) == 3
