from pathlib import Path

import pytest

from keel_policy.adapters.policy_file import load_policy
from keel_policy.domain.engine import PolicyEngine
from keel_policy.errors import PolicyFileError

SETS = """\
version: 1
sets:
  - name: default
    rules:
      - {id: allow-clock, tool: clock, decision: allow}
      - {id: allow-calc, tool: calculator, decision: allow}
  - name: ops
    profile: ops
    extends: default
    rules:
      - {id: allow-shell, tool: shell, decision: require_approval}
  - name: acme
    tenant: acme
    rules:
      - {id: acme-clock-only, tool: clock, decision: allow}
  - name: acme-ops
    tenant: acme
    profile: ops
    extends: ops
    rules:
      - {id: allow-calc, tool: calculator, decision: deny, description: acme ops may not}
"""


@pytest.fixture
def engine(tmp_path: Path) -> PolicyEngine:
    path = tmp_path / "sets.yaml"
    path.write_text(SETS)
    return PolicyEngine(load_policy(path))


@pytest.mark.parametrize(
    ("tenant", "profile", "policy_set"),
    [
        ("acme", "ops", "acme-ops"),  # tenant + profile
        ("acme", "default", "acme"),  # tenant
        ("acme", "research", "acme"),
        ("globex", "ops", "ops"),  # profile
        ("", "ops", "ops"),
        ("globex", "default", "default"),  # neither
        ("", "research", "default"),
    ],
)
def test_fallback_order(engine: PolicyEngine, tenant: str, profile: str, policy_set: str) -> None:
    verdict = engine.evaluate("clock", {}, profile=profile, tenant=tenant)
    assert verdict.policy_set == policy_set


def test_the_selected_set_alone_decides(engine: PolicyEngine) -> None:
    # acme has no calculator rule: the default set's allow does not leak in.
    assert engine.evaluate("calculator", {}, tenant="acme").rule_id == "default-deny"
    assert engine.evaluate("calculator", {}, tenant="acme").policy_set == "acme"


def test_extends_inherits_and_a_same_id_rule_replaces(engine: PolicyEngine) -> None:
    ops = engine.evaluate("shell", {}, profile="ops")
    assert (ops.decision, ops.policy_set) == ("require_approval", "ops")
    assert engine.evaluate("calculator", {}, profile="ops").decision == "allow"
    acme_ops = engine.evaluate("calculator", {}, profile="ops", tenant="acme")
    assert (acme_ops.decision, acme_ops.reason) == ("deny", "acme ops may not")
    assert engine.evaluate("shell", {}, profile="ops", tenant="acme").rule_id == "allow-shell"
    name, rules = engine.rules_for("ops", "acme")
    assert name == "acme-ops"
    assert [r.id for r in rules] == ["allow-calc", "allow-shell", "allow-clock"]


def test_explain_reports_the_selectors_tried(engine: PolicyEngine) -> None:
    explanation = engine.explain("clock", {}, profile="research", tenant="globex")
    assert explanation.selection == (
        "tenant=globex profile=research",
        "tenant=globex profile=*",
        "tenant=* profile=research",
        "tenant=* profile=*",
    )


def test_without_a_fallback_set_everything_is_denied(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "sets:\n  - {name: ops, profile: ops, rules: [{id: a, tool: '*', decision: allow}]}\n"
    )
    e = PolicyEngine(load_policy(path))
    assert e.evaluate("x", {}, profile="ops").decision == "allow"
    verdict = e.evaluate("x", {})
    assert (verdict.decision, verdict.rule_id, verdict.policy_set) == (
        "deny",
        "default-deny",
        "(none)",
    )
    assert e.explain("x", {}).rules == ()


def test_shadow_candidates_are_evaluated_beside_the_active_set(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: default\n"
        "rules:\n"
        "  - {id: allow-send, tool: send_email, decision: allow}\n"
        "  - {id: allow-clock, tool: clock, decision: allow}\n"
        "shadow:\n"
        "  description: trial - outbound mail needs approval\n"
        "  extends: default\n"
        "  rules:\n"
        "    - {id: allow-send, tool: send_email, decision: require_approval}\n"
    )
    e = PolicyEngine(load_policy(path))
    outcome = e.decide("send_email", {})
    assert outcome.verdict.decision == "allow"
    assert outcome.shadow is not None
    assert (outcome.shadow.decision, outcome.shadow.policy_set) == (
        "require_approval",
        "default:shadow",
    )
    clock = e.decide("clock", {})
    assert clock.shadow is not None
    assert clock.shadow.rule_id == "allow-clock"
    # Evaluate is the enforced decision only.
    assert e.evaluate("send_email", {}).decision == "allow"
    assert e.explain("send_email", {}).shadow == outcome.shadow


def test_a_shadow_without_extends_starts_from_nothing(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("rules: [{id: allow-all, tool: '*', decision: allow}]\nshadow: {rules: []}\n")
    outcome = PolicyEngine(load_policy(path)).decide("x", {})
    assert outcome.verdict.decision == "allow"
    assert outcome.shadow is not None
    assert outcome.shadow.rule_id == "default-deny"


def test_a_directory_of_files_makes_one_policy(tmp_path: Path) -> None:
    (tmp_path / "00-default.yaml").write_text("rules: [{id: a, tool: clock, decision: allow}]\n")
    (tmp_path / "acme.yml").write_text(
        "name: acme\ntenant: acme\nextends: default\n"
        "rules: [{id: b, tool: calculator, decision: allow}]\n"
    )
    (tmp_path / "notes.txt").write_text("not a policy")
    (tmp_path / ".hidden.yaml").write_text("broken: [")
    e = PolicyEngine(load_policy(tmp_path))
    assert e.set_names == ("default", "acme")
    assert e.evaluate("clock", {}, tenant="acme").policy_set == "acme"
    assert e.evaluate("clock", {}, tenant="acme").decision == "allow"
    assert e.evaluate("calculator", {}).decision == "deny"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"a.yaml": "rules: []\n", "b.yaml": "rules: []\n"},
            r"b.yaml: duplicate set name 'default' \(also in .*a.yaml\)",
        ),
        (
            {"a.yaml": "rules: []\n", "b.yaml": "name: other\nrules: []\n"},
            r"b.yaml: set 'other' selects tenant=\* profile=\*, as does set 'default'",
        ),
        ({"a.yaml": "extends: nope\n"}, r"a.yaml: set 'default' extends unknown set 'nope'"),
        (
            {"a.yaml": "sets:\n  - {name: x, extends: y}\n  - {name: y, profile: p, extends: x}\n"},
            r"extends forms a cycle: x -> y -> x",
        ),
        ({"a.yaml": "shadow: {extends: ghost}\n"}, r"extends unknown set 'ghost'"),
    ],
)
def test_set_errors_name_the_file(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(PolicyFileError, match=message):
        load_policy(tmp_path)


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="has no \\*.yaml or \\*.yml files"):
        load_policy(tmp_path)
