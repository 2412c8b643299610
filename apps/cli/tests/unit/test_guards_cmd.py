"""``keel guards test``/``check``: the verdict as an exit code, every matching rule in words,
and a broken file refused with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel_cli.main import main

GUARDS = """\
rules:
  - id: api-key
    match: answer
    regex: 'sk-[A-Za-z0-9]{16,}'
    verdict: redact
  - id: no-rm
    match: shell
    regex: 'rm\\s+-rf'
    verdict: block
    reason: destructive command
escalation:
  hedging: ["not sure"]
"""


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        main(argv)
    return int(done.value.code or 0)


@pytest.fixture
def guards_file(tmp_path: Path) -> Path:
    path = tmp_path / "guards.yaml"
    path.write_text(GUARDS)
    return path


def test_a_redacted_answer_shows_the_rule_and_the_result(
    guards_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["guards", "test", str(guards_file), "--answer", "key sk-abcdefghijklmnopqr"])
    assert code == 4
    assert capsys.readouterr().out.splitlines() == [
        "answer: redact",
        "  rule api-key (redact): matches /sk-[A-Za-z0-9]{16,}/",
        "  result: key [redacted]",
    ]


def test_a_blocked_call_and_a_hedging_answer(
    guards_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = '{"cmd": "rm -rf /"}'
    assert run(["guards", "test", str(guards_file), "--tool", "shell", "--args", args]) == 1
    assert "rule no-rm (block): destructive command" in capsys.readouterr().out
    assert run(["guards", "test", str(guards_file), "--answer", "I am not sure"]) == 3
    assert "rule escalation.hedging (require_approval)" in capsys.readouterr().out
    assert run(["guards", "test", str(guards_file), "--tool", "calc"]) == 0


def test_check_refuses_a_broken_file_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rules:\n  - {id: a, match: answer, regex: '(', verdict: block}\n")
    assert run(["guards", "check", str(path)]) == 2
    assert f"{path}:2: rules.0.regex" in capsys.readouterr().err
