from keel_memory.adapters.milvus_filter import build_filter, in_list, literal


def test_literals_escape_quotes_backslashes_and_line_breaks() -> None:
    assert literal('say "hi"') == '"say \\"hi\\""'
    assert literal("a\\b") == '"a\\\\b"'
    assert literal("it's") == '"it\'s"'
    assert literal("line\nnext\ttab\r") == '"line\\nnext\\ttab\\r"'


def test_filter_joins_type_and_metadata_clauses() -> None:
    assert build_filter([], {}) == ""
    assert build_filter(["semantic"], {}) == 'type in ["semantic"]'
    assert build_filter(["episodic", "semantic"], {"b": "2", "a": "1"}) == (
        'type in ["episodic", "semantic"] and metadata["a"] == "1" and metadata["b"] == "2"'
    )
    assert in_list("id", ['x"y']) == 'id in ["x\\"y"]'
