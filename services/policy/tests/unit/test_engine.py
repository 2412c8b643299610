import pytest

from keel_policy.adapters.policy_file import load_policy
from keel_policy.config import DEFAULT_POLICY
from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.models import ArgConstraint, PolicySet, Rule


def engine(*rules: Rule) -> PolicyEngine:
    return PolicyEngine(PolicySet(rules=rules))


def test_nothing_is_allowed_without_a_rule() -> None:
    verdict = engine().evaluate("calculator", {})
    assert verdict.decision == "deny"
    assert verdict.rule_id == "default-deny"


def test_higher_priority_wins_and_ties_keep_file_order() -> None:
    e = engine(
        Rule(id="allow-all", priority=1, tool="*", decision="allow"),
        Rule(id="deny-shell", priority=9, tool="shell*", decision="deny"),
        Rule(id="approve-shell", priority=9, tool="shell", decision="require_approval"),
    )
    assert e.evaluate("shell", {}).rule_id == "deny-shell"
    assert e.evaluate("calculator", {}).rule_id == "allow-all"


@pytest.mark.parametrize(
    ("constraint", "args", "matches"),
    [
        (ArgConstraint(path="to", regex=r"@example\.com$"), {"to": "a@example.com"}, True),
        (ArgConstraint(path="to", regex=r"@example\.com$"), {"to": "a@evil.com"}, False),
        (ArgConstraint(path="amount", min=0, max=100), {"amount": 50}, True),
        (ArgConstraint(path="amount", min=0, max=100), {"amount": 500}, False),
        (ArgConstraint(path="amount", max=100), {"amount": "50"}, False),
        (ArgConstraint(path="a.b", equals="x"), {"a": {"b": "x"}}, True),
        (ArgConstraint(path="a.b", equals="x"), {"a": {}}, False),
        (ArgConstraint(path="missing", equals=1), {}, False),
    ],
)
def test_argument_constraints(constraint: ArgConstraint, args: dict, matches: bool) -> None:  # type: ignore[type-arg]
    e = engine(Rule(id="r", tool="t", decision="allow", when=(constraint,)))
    assert (e.evaluate("t", args).decision == "allow") is matches


def test_profiles_scope_rules() -> None:
    e = engine(Rule(id="r", tool="t", decision="allow", profiles=("ops",)))
    assert e.evaluate("t", {}, profile="ops").decision == "allow"
    assert e.evaluate("t", {}, profile="default").decision == "deny"


def test_default_policy_allows_arithmetic_but_not_huge_powers() -> None:
    e = PolicyEngine(load_policy(DEFAULT_POLICY))
    assert e.evaluate("calculator", {"expression": "(17 * 23) + 4"}).decision == "allow"
    denied = e.evaluate("calculator", {"expression": "2 ** 99999"})
    assert (denied.decision, denied.rule_id) == ("deny", "deny-huge-powers")
    assert e.evaluate("send_email", {"to": "x"}).decision == "require_approval"
    assert e.evaluate("rm_rf", {}).decision == "deny"
