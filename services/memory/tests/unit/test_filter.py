from datetime import UTC, datetime

from keel_memory.adapters.milvus_filter import build_filter, forget_filter, in_list, literal
from keel_memory.domain.models import MemoryScope

DEFAULT = MemoryScope()
TENANT = 'metadata["keel_tenant"] == "default"'


def test_literals_escape_quotes_backslashes_and_line_breaks() -> None:
    assert literal('say "hi"') == '"say \\"hi\\""'
    assert literal("a\\b") == '"a\\\\b"'
    assert literal("it's") == '"it\'s"'
    assert literal("line\nnext\ttab\r") == '"line\\nnext\\ttab\\r"'


def test_filter_joins_scope_type_and_metadata_clauses() -> None:
    assert build_filter([], {}, DEFAULT) == TENANT
    assert build_filter(["semantic"], {}, DEFAULT) == f'{TENANT} and type in ["semantic"]'
    assert build_filter(["episodic", "semantic"], {"b": "2", "a": "1"}, DEFAULT) == (
        f'{TENANT} and type in ["episodic", "semantic"] and metadata["a"] == "1" and '
        'metadata["b"] == "2"'
    )


def test_every_filter_is_confined_to_the_scope_with_values_escaped() -> None:
    scope = MemoryScope(tenant='a" or type != "', agent="bot")
    expected = (
        'metadata["keel_tenant"] == "a\\" or type != \\"" and metadata["keel_agent"] == "bot"'
    )
    assert build_filter([], {}, scope) == expected
    assert forget_filter("s1", None, [], scope) == f'{expected} and session_id == "s1"'
    cutoff = datetime(2026, 1, 1, tzinfo=UTC)
    assert forget_filter("", cutoff, ["semantic"], scope).startswith(expected)
    assert forget_filter("", None, ["semantic"], scope) == ""
    assert in_list("id", ['x"y']) == 'id in ["x\\"y"]'
