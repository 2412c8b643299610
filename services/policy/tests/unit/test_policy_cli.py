"""``keel policy test`` / ``keel policy check``, run in-process through the real CLI entry."""

from pathlib import Path

import pytest

from keel_cli.main import main
from keel_policy.config import DEFAULT_POLICY


def keel(*argv: str) -> int:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    return int(done.value.code or 0)


@pytest.mark.parametrize(
    ("tool", "args", "code", "rule"),
    [
        ("calculator", '{"expression": "1 + 1"}', 0, "allow-calculator"),
        ("calculator", '{"expression": "2 ** 99999"}', 1, "deny-huge-powers"),
        ("send_email", '{"to": "bob@example.com"}', 3, "approve-outbound"),
        ("rm_rf", "{}", 1, "default-deny"),
    ],
)
def test_exit_code_is_the_decision(
    capsys: pytest.CaptureFixture[str], tool: str, args: str, code: int, rule: str
) -> None:
    assert keel("policy", "test", str(DEFAULT_POLICY), "--tool", tool, "--args", args) == code
    out = capsys.readouterr().out
    assert f"rule: {rule}\n" in out
    assert "policy set: default\n" in out
    assert "rules considered" not in out


def test_explain_prints_every_rule_considered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "sets:\n"
        "  - name: default\n"
        "    rules: [{id: deny-all, tool: '*', decision: deny}]\n"
        "  - name: acme-ops\n"
        "    tenant: acme\n"
        "    profile: ops\n"
        "    rules:\n"
        "      - id: pay-small\n"
        "        tool: pay\n"
        "        decision: allow\n"
        "        when: [{path: $.amount, max: 100}]\n"
        "      - {id: pay-approve, tool: pay, decision: require_approval}\n"
    )
    argv = ["policy", "test", str(path), "--tool", "pay", "--tenant", "acme", "--profile", "ops"]
    assert keel(*argv, "--args", '{"amount": 500}', "--explain") == 3
    out = capsys.readouterr().out
    assert "decision: require_approval\nrule: pay-approve\npolicy set: acme-ops\n" in out
    assert "selection: tenant=acme profile=ops\n" in out
    assert "  skip  pay-small (priority 0, tool 'pay', allow): condition 1 failed" in out
    assert "      FAIL $.amount (any) is a number <= 100: values: [500]; failing: [500]" in out
    assert "  MATCH pay-approve" in out
    assert keel(*argv, "--args", '{"amount": 5}') == 0
    assert keel("policy", "test", str(path), "--tool", "pay", "--args", "{}") == 1


def test_an_invalid_file_exits_2_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("rules:\n  - {id: a, tool: x, decision: perhaps}\n")
    assert keel("policy", "test", str(path), "--tool", "x") == 2
    assert f"keel: error: {path}:2: rules.0.decision" in capsys.readouterr().err
    assert keel("policy", "check", str(path)) == 2


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert keel("policy", "test", str(DEFAULT_POLICY), "--tool", "x", "--args", "{") == 2
    assert "--args is not JSON" in capsys.readouterr().err
    assert keel("policy", "test", str(DEFAULT_POLICY), "--tool", "x", "--args", "[1]") == 2


def test_check_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert keel("policy", "check", str(DEFAULT_POLICY)) == 0
    assert capsys.readouterr().out.startswith("ok: 1 set (default), 12 rules")


def test_explain_shows_lists_vars_and_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        """
lists:
  payees: [alice]
vars:
  limit: 3
rules:
  - id: pay
    tool: pay
    decision: allow
    when:
      - {path: to, in: $lists.payees}
      - {path: amount, lte: $vars.limit}
      - state: {count: pay, per: session, lte: 2}
"""
    )
    args = '{"to": "alice", "amount": 3}'
    code = keel(
        "policy", "test", str(path), "--tool", "pay", "--args", args, "--explain", "--session", "s9"
    )
    out = capsys.readouterr().out
    assert code == 0
    assert '$lists.payees = ["alice"]' in out
    assert "$vars.limit = 3" in out
    assert "count|pay for session 's9': 0 so far + 1 this call = 1" in out
