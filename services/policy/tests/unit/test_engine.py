from typing import Any

import pytest
from pydantic import ValidationError

from keel_policy.adapters.policy_file import load_policy
from keel_policy.config import DEFAULT_POLICY
from keel_policy.domain.engine import CACHE_LIMIT, PolicyEngine
from keel_policy.domain.models import ArgConstraint, PolicySet, Rule


def engine(*rules: Rule) -> PolicyEngine:
    return PolicyEngine(PolicySet(rules=rules))


def allows(constraint: ArgConstraint, args: dict[str, Any]) -> bool:
    e = engine(Rule(id="r", tool="t", decision="allow", when=(constraint,)))
    return e.evaluate("t", args).decision == "allow"


def test_nothing_is_allowed_without_a_rule() -> None:
    verdict = engine().evaluate("calculator", {})
    assert verdict.decision == "deny"
    assert verdict.rule_id == "default-deny"
    assert verdict.policy_set == "default"


def test_higher_priority_wins_and_ties_keep_file_order() -> None:
    e = engine(
        Rule(id="allow-all", priority=1, tool="*", decision="allow"),
        Rule(id="deny-shell", priority=9, tool="shell*", decision="deny"),
        Rule(id="approve-shell", priority=9, tool="shell", decision="require_approval"),
    )
    assert e.evaluate("shell", {}).rule_id == "deny-shell"
    assert e.evaluate("calculator", {}).rule_id == "allow-all"


@pytest.mark.parametrize(
    ("pattern", "tool", "matches"),
    [
        ("send_*", "send_email", True),
        ("send_*", "resend_email", False),
        ("fs.*", "fs.read", True),
        ("fs.*", "fsread", False),
        ("fs.?", "fs.x", True),
        ("tool[12]", "tool2", True),
        ("tool[12]", "tool3", False),
        ("Calc", "calc", False),
        ("*", "anything.at_all", True),
    ],
)
def test_tool_name_globs(pattern: str, tool: str, matches: bool) -> None:
    e = engine(Rule(id="r", tool=pattern, decision="allow"))
    assert (e.evaluate(tool, {}).decision == "allow") is matches


@pytest.mark.parametrize(
    ("constraint", "args", "matches"),
    [
        (ArgConstraint(path="to", regex=r"@example\.com$"), {"to": "a@example.com"}, True),
        (ArgConstraint(path="to", regex=r"@example\.com$"), {"to": "a@evil.com"}, False),
        (ArgConstraint(path="n", regex=r"^\d{3}$"), {"n": 123}, True),
        (ArgConstraint(path="o", regex=r'"k":1'), {"o": {"k": 1}}, True),
        (ArgConstraint(path="amount", min=0, max=100), {"amount": 50}, True),
        (ArgConstraint(path="amount", min=0, max=100), {"amount": 100.0}, True),
        (ArgConstraint(path="amount", min=0, max=100), {"amount": 500}, False),
        (ArgConstraint(path="amount", min=0, max=100), {"amount": -1}, False),
        (ArgConstraint(path="amount", max=100), {"amount": "50"}, False),
        (ArgConstraint(path="amount", max=100), {"amount": True}, False),
        (ArgConstraint(path="amount", min=10), {"amount": float("inf")}, True),
        (ArgConstraint(path="amount", max=10), {"amount": float("nan")}, False),
        (ArgConstraint(path="a.b", equals="x"), {"a": {"b": "x"}}, True),
        (ArgConstraint(path="a.b", equals="x"), {"a": {}}, False),
        (ArgConstraint(path="a.b", equals="x"), {"a": "not an object"}, False),
        (ArgConstraint(path="missing", equals=1), {}, False),
        (ArgConstraint(path="flag", equals=True), {"flag": True}, True),
        (ArgConstraint(path="flag", equals=True), {"flag": 1}, False),
        (ArgConstraint(path="n", equals=1), {"n": True}, False),
        (ArgConstraint(path="n", equals=1), {"n": 1.0}, True),
        (ArgConstraint(path="xs", equals=[1, 2]), {"xs": [1, 2]}, True),
        (ArgConstraint(path="mode", one_of=("a", "b")), {"mode": "b"}, True),
        (ArgConstraint(path="mode", one_of=("a", "b")), {"mode": "c"}, False),
        (ArgConstraint(path="n", one_of=(1, "1")), {"n": 1}, True),
        (ArgConstraint(path="n", one_of=(1,)), {"n": True}, False),
        (ArgConstraint(path="n", min=1, max=9, one_of=(5, 50)), {"n": 50}, False),
        (ArgConstraint(path="n", min=1, max=9, one_of=(5, 50)), {"n": 5}, True),
    ],
)
def test_argument_constraints(
    constraint: ArgConstraint, args: dict[str, Any], matches: bool
) -> None:
    assert allows(constraint, args) is matches


RECIPIENTS = "$.recipients[*].domain"


@pytest.mark.parametrize(
    ("match", "domains", "matches"),
    [
        ("any", ["example.com", "evil.com"], True),
        ("all", ["example.com", "evil.com"], False),
        ("all", ["example.com", "example.com"], True),
        ("any", ["evil.com"], False),
        # A path that selects nothing never matches, whatever the quantifier.
        ("any", [], False),
        ("all", [], False),
    ],
)
def test_json_path_quantifiers(match: str, domains: list[str], matches: bool) -> None:
    constraint = ArgConstraint(path=RECIPIENTS, match=match, equals="example.com")  # type: ignore[arg-type]
    args = {"recipients": [{"domain": d} for d in domains]}
    assert allows(constraint, args) is matches


def test_json_path_on_nested_objects_and_missing_parts() -> None:
    mode = ArgConstraint(path="$.options.mode", one_of=("safe", "dry-run"))
    assert allows(mode, {"options": {"mode": "safe"}})
    assert not allows(mode, {"options": {"mode": "fast"}})
    assert not allows(mode, {"options": None})
    assert not allows(mode, {})
    last = ArgConstraint(path="$.items[-1].qty", max=10)
    assert allows(last, {"items": [{"qty": 99}, {"qty": 3}]})
    assert not allows(last, {"items": []})
    every_value = ArgConstraint(path="$.limits.*", match="all", min=0, max=5)
    assert allows(every_value, {"limits": {"a": 1, "b": 5}})
    assert not allows(every_value, {"limits": {"a": 1, "b": "5"}})


def test_a_deny_rule_on_any_foreign_recipient_beats_a_broad_allow() -> None:
    e = engine(
        Rule(
            id="deny-foreign",
            priority=10,
            tool="send_email",
            decision="deny",
            when=(ArgConstraint(path=RECIPIENTS, regex=r"^(?!example\.com$)"),),
        ),
        Rule(id="allow-send", tool="send_email", decision="allow"),
    )
    internal = {"recipients": [{"domain": "example.com"}]}
    mixed = {"recipients": [{"domain": "example.com"}, {"domain": "evil.com"}]}
    assert e.evaluate("send_email", internal).rule_id == "allow-send"
    assert e.evaluate("send_email", mixed).rule_id == "deny-foreign"


def test_every_constraint_of_a_rule_must_hold() -> None:
    rule = Rule(
        id="r",
        tool="transfer",
        decision="allow",
        when=(
            ArgConstraint(path="currency", equals="EUR"),
            ArgConstraint(path="$.amount", max=100),
        ),
    )
    e = engine(rule)
    assert e.evaluate("transfer", {"currency": "EUR", "amount": 5}).decision == "allow"
    assert e.evaluate("transfer", {"currency": "USD", "amount": 5}).decision == "deny"
    assert e.evaluate("transfer", {"currency": "EUR", "amount": 500}).decision == "deny"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"path": "x"}, "needs one of equals, one_of, regex, min, max"),
        ({"path": "x", "min": 5, "max": 1}, "min 5.0 is above max 1.0"),
        ({"path": "$.a[?(@.b)]", "equals": 1}, "invalid JSON path"),
        ({"path": "a..b", "equals": 1}, "empty key"),
        ({"path": "x", "regex": "(["}, "invalid regex"),
        ({"path": "x", "equals": 1, "match": "most"}, "'any' or 'all'"),
    ],
)
def test_bad_constraints_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ArgConstraint.model_validate(fields)


def test_profiles_scope_rules() -> None:
    e = engine(Rule(id="r", tool="t", decision="allow", profiles=("ops",)))
    assert e.evaluate("t", {}, profile="ops").decision == "allow"
    assert e.evaluate("t", {}, profile="default").decision == "deny"


def test_the_candidate_cache_is_bounded_and_stays_correct() -> None:
    e = engine(
        Rule(id="deny-x", priority=5, tool="x*", decision="deny"),
        Rule(id="allow-all", tool="*", decision="allow"),
    )
    for n in range(CACHE_LIMIT + 10):
        assert e.evaluate(f"tool-{n}", {}).rule_id == "allow-all"
    assert e.evaluate("xray", {}).rule_id == "deny-x"
    assert e.evaluate("xray", {}, profile="other").rule_id == "deny-x"


def test_explain_lists_each_rule_considered_and_the_failing_condition() -> None:
    e = engine(
        Rule(id="approve-big", priority=9, tool="pay", decision="require_approval",
             when=(ArgConstraint(path="$.amount", min=1000),)),
        Rule(id="deny-ops", priority=8, tool="pay", decision="deny", profiles=("ops",)),
        Rule(id="other-tool", priority=7, tool="refund", decision="deny"),
        Rule(id="allow-small", priority=1, tool="pay", decision="allow",
             when=(ArgConstraint(path="$.currency", equals="EUR"),
                   ArgConstraint(path="$.amount", max=999))),
        Rule(id="never-reached", tool="*", decision="allow"),
    )  # fmt: skip
    explanation = e.explain("pay", {"amount": 50, "currency": "EUR"})
    assert explanation.verdict.rule_id == "allow-small"
    assert explanation.selection == ("tenant=* profile=default", "tenant=* profile=*")
    traces = {t.rule_id: t for t in explanation.rules}
    assert [t.rule_id for t in explanation.rules] == [
        "approve-big",
        "deny-ops",
        "other-tool",
        "allow-small",
    ]
    assert not traces["approve-big"].matched
    assert traces["approve-big"].reason == "condition 1 failed: $.amount (any) is a number >= 1000"
    assert traces["approve-big"].conditions[0].detail == "values: [50]; failing: [50]"
    assert traces["deny-ops"].reason == "profile 'default' is not in ['ops']"
    assert traces["other-tool"].reason == "tool 'pay' does not match 'refund'"
    assert traces["allow-small"].matched
    assert [c.passed for c in traces["allow-small"].conditions] == [True, True]

    missing = e.explain("pay", {"currency": "EUR"})
    assert missing.verdict.rule_id == "never-reached"
    assert missing.rules[0].conditions[0].detail == "path selects nothing"
    assert missing.rules[3].reason.startswith("condition 2 failed")

    # Explain decides exactly as evaluate does.
    for args in ({"amount": 5000}, {"amount": 5, "currency": "USD"}, {}):
        assert e.explain("pay", args).verdict == e.evaluate("pay", args)


def test_default_policy_allows_arithmetic_but_not_huge_powers() -> None:
    e = PolicyEngine(load_policy(DEFAULT_POLICY))
    assert e.evaluate("calculator", {"expression": "(17 * 23) + 4"}).decision == "allow"
    denied = e.evaluate("calculator", {"expression": "2 ** 99999"})
    assert (denied.decision, denied.rule_id) == ("deny", "deny-huge-powers")
    assert e.evaluate("send_email", {"to": "x"}).decision == "require_approval"
    for tool in ("clock", "noop", "count"):
        assert e.evaluate(tool, {}).decision == "allow"
    assert e.evaluate("rm_rf", {}).decision == "deny"
    assert e.evaluate("calculator", {}, profile="ops", tenant="acme").decision == "allow"
