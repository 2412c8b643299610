import pytest

from keel_policy.domain.jsonpath import Index, JsonPathError, Key, Wildcard, compile_path, parse

DOC = {
    "recipients": [
        {"address": "a@example.com", "domain": "example.com"},
        {"address": "b@evil.com", "domain": "evil.com"},
    ],
    "options": {"mode": "fast", "odd key": 1, "it's": 2},
    "matrix": [[1, 2], [3, 4]],
    "empty": [],
}


def select(path: str) -> list[object]:
    return compile_path(parse(path))(DOC)


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("$", [DOC]),
        ("$.options.mode", ["fast"]),
        ("$['options']['odd key']", [1]),
        ('$["options"]["it\'s"]', [2]),
        ("$['options']['it\\'s']", [2]),
        ("$.recipients[0].domain", ["example.com"]),
        ("$.recipients[-1].domain", ["evil.com"]),
        ("$.recipients[*].domain", ["example.com", "evil.com"]),
        ("$.recipients.*.domain", ["example.com", "evil.com"]),
        ("$.matrix[*][*]", [1, 2, 3, 4]),
        ("$.matrix[1][0]", [3]),
        ("$.options.*", ["fast", 1, 2]),
        ("$.empty[*]", []),
        ("$.recipients[2]", []),
        ("$.recipients[-3]", []),
        ("$.options.missing", []),
        ("$.options.mode.deeper", []),
        ("$.options[0]", []),
        ("$.recipients.domain", []),
        ("$.options.mode[*]", []),
    ],
)
def test_selection(path: str, values: list[object]) -> None:
    assert select(path) == values


def test_parse_steps() -> None:
    assert parse("$.a[*]['b c'][-2]") == (Key("a"), Wildcard(), Key("b c"), Index(-2))


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("a.b", "must start with '\\$'"),
        ("$..a", "recursive descent"),
        ("$.a[?(@.x)]", "position 4: expected \\*, an integer or a quoted key"),
        ("$.a[1:2]", "position 4"),
        ("$.", "expected a name after"),
        ("$.a[", "position 4"),
        ("$['a'", "expected '\\]' after the quoted key"),
        ("$['a", "unterminated quoted key"),
        ("$a", "unexpected 'a'"),
    ],
)
def test_unsupported_paths_are_refused_with_a_position(path: str, reason: str) -> None:
    with pytest.raises(JsonPathError, match=reason):
        parse(path)
