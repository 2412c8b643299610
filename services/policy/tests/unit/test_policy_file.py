from pathlib import Path

import pytest

from keel_policy.adapters.policy_file import load_policy
from keel_policy.errors import PolicyFileError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_a_bad_decision_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nrules:\n  - id: a\n    tool: x\n    decision: allow\n"
        "  - id: b\n    tool: y\n    decision: maybe\n",
    )
    with pytest.raises(PolicyFileError) as err:
        load_policy(path)
    assert f"{path}:8: rules.1.decision" in str(err.value)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nrules:\n  - id: [unclosed\n")
    with pytest.raises(PolicyFileError, match=r"policy.yaml:\d+: not valid YAML"):
        load_policy(path)


def test_invalid_regex_and_duplicate_ids_are_refused(tmp_path: Path) -> None:
    bad_regex = write(
        tmp_path,
        "rules:\n  - id: a\n    tool: x\n    decision: deny\n    when:\n"
        "      - path: p\n        regex: '(['\n",
    )
    with pytest.raises(PolicyFileError, match="invalid regex"):
        load_policy(bad_regex)
    dupes = write(
        tmp_path,
        "rules:\n  - {id: a, tool: x, decision: deny}\n  - {id: a, tool: y, decision: deny}\n",
    )
    with pytest.raises(PolicyFileError, match="duplicate rule id"):
        load_policy(dupes)


def test_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot read policy file"):
        load_policy(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "sets:\n  - name: a\n    rules:\n      - id: r\n        tool: x\n"
            "        decision: allow\n        when:\n          - path: $.a[?(@.b)]\n"
            "            equals: 1\n",
            ":8: sets.0.rules.0.when.0.path: Value error, invalid JSON path",
        ),
        (
            "sets:\n  - name: a\n  - name: b\n    profile: p\n    tenant: t\n    colour: red\n",
            ":6: sets.1.colour: Extra inputs are not permitted",
        ),
        (
            "sets:\n  - name: a\n  - name: a\n    profile: p\n",
            ":2: sets: Value error, duplicate set name 'a' (sets 0 and 1)",
        ),
        (
            "sets:\n  - {name: a}\n  - {name: b}\n",
            ":2: sets: Value error, sets 0 and 1 both select tenant=* profile=*",
        ),
        (
            "rules:\n  - {id: a, tool: x, decision: allow, when: [{path: n, min: 3, max: 1}]}\n",
            ":2: rules.0.when.0: Value error, min 3.0 is above max 1.0",
        ),
        ("sets: [{name: a}]\nrules: []\n", "a file has either sets or one top-level set"),
        ("version: 2\n", ":1: version: Input should be 1"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyFileError) as err:
        load_policy(path)
    message = str(err.value)
    assert message.startswith(str(path))
    assert (f"{path}{where}" if where.startswith(":") else where) in message
