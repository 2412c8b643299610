"""Every operator of the condition algebra and its edge cases (issue 13 item 2)."""

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.models import ArgConstraint, NamedList, PolicyBundle, PolicySet, Rule
from keel_policy.errors import PolicyFileError

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC).timestamp()


def engine(when: list[dict[str, Any]], **names: Any) -> PolicyEngine:
    rule = Rule.model_validate({"id": "r", "tool": "t", "decision": "allow", "when": when})
    bundle = PolicyBundle(sets=(PolicySet(rules=(rule,)),), **names)
    return PolicyEngine(bundle, clock=lambda: NOW)


def holds(condition: dict[str, Any], args: dict[str, Any], **names: Any) -> bool:
    verdict = engine([condition], **names).evaluate("t", args)
    explained = engine([condition], **names).explain("t", args).verdict
    # The slow path (explain) and the fast one (evaluate) always agree.
    assert explained.decision == verdict.decision
    return verdict.decision == "allow"


CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # equals null is writable and is not "missing"
    ("null equals null", {"path": "cc", "equals": None}, {"cc": None}, True),
    ("null vs value", {"path": "cc", "equals": None}, {"cc": "x"}, False),
    ("null vs missing", {"path": "cc", "equals": None}, {}, False),
    ("equals false is not 0", {"path": "f", "equals": False}, {"f": 0}, False),
    # missing
    ("missing holds when absent", {"path": "cc", "missing": True}, {}, True),
    ("missing fails when present", {"path": "cc", "missing": True}, {"cc": []}, False),
    ("missing on empty list items", {"path": "$.cc[*]", "missing": True}, {"cc": []}, True),
    ("present", {"path": "cc", "missing": False}, {"cc": None}, True),
    ("present fails when absent", {"path": "cc", "missing": False}, {}, False),
    # not
    ("not of a failing test", {"not": {"path": "to", "equals": "a"}}, {"to": "b"}, True),
    ("not of a passing test", {"not": {"path": "to", "equals": "a"}}, {"to": "a"}, False),
    ("not of a missing path holds", {"not": {"path": "to", "equals": "a"}}, {}, True),
    # any_of / all_of
    (
        "cc absent or all internal (absent)",
        {
            "any_of": [
                {"path": "cc", "missing": True},
                {"path": "$.cc[*]", "match": "all", "endswith": "@corp.example"},
            ]
        },
        {},
        True,
    ),
    (
        "cc absent or all internal (one external)",
        {
            "any_of": [
                {"path": "cc", "missing": True},
                {"path": "$.cc[*]", "match": "all", "endswith": "@corp.example"},
            ]
        },
        {"cc": ["a@corp.example", "b@evil.example"]},
        False,
    ),
    (
        "all_of",
        {"all_of": [{"path": "a", "equals": 1}, {"path": "b", "equals": 2}]},
        {"a": 1, "b": 2},
        True,
    ),
    (
        "all_of one fails",
        {"all_of": [{"path": "a", "equals": 1}, {"path": "b", "equals": 2}]},
        {"a": 1, "b": 3},
        False,
    ),
    # where: any/all over lists of objects and over objects' values
    (
        "all items have a positive qty",
        {"path": "$.items[*]", "match": "all", "where": [{"path": "qty", "gt": 0}]},
        {"items": [{"qty": 1}, {"qty": 2}]},
        True,
    ),
    (
        "all items: one has qty 0",
        {"path": "$.items[*]", "match": "all", "where": [{"path": "qty", "gt": 0}]},
        {"items": [{"qty": 1}, {"qty": 0}]},
        False,
    ),
    (
        "any value of an object",
        {"path": "$.headers.*", "match": "any", "contains": "secret"},
        {"headers": {"a": "x", "b": "my secret"}},
        True,
    ),
    (
        "where on a non-object element fails",
        {"path": "$.items[*]", "where": [{"path": "qty", "gt": 0}]},
        {"items": [3]},
        False,
    ),
    # text tests
    ("startswith", {"path": "u", "startswith": "https://"}, {"u": "https://x"}, True),
    ("startswith a number", {"path": "u", "startswith": "1"}, {"u": 12}, False),
    ("endswith", {"path": "to", "endswith": "@a.example"}, {"to": "b@a.example"}, True),
    ("contains", {"path": "s", "contains": "pay"}, {"s": "repay now"}, True),
    # in: literal lists, other paths (subset)
    ("in a literal list", {"path": "x", "in": ["a", "b"]}, {"x": "b"}, True),
    ("not in a literal list", {"path": "x", "in": ["a", "b"]}, {"x": "c"}, False),
    ("in with numbers", {"path": "x", "in": [1, 2]}, {"x": 2}, True),
    ("true is not in [1]", {"path": "x", "in": [1]}, {"x": True}, False),
    (
        "cc subset of recipients",
        {"path": "$.cc[*]", "match": "all", "in": {"path": "$.to[*]"}},
        {"to": ["a", "b", "c"], "cc": ["a", "c"]},
        True,
    ),
    (
        "cc not a subset of recipients",
        {"path": "$.cc[*]", "match": "all", "in": {"path": "$.to[*]"}},
        {"to": ["a", "b"], "cc": ["a", "z"]},
        False,
    ),
    (
        "subset of a missing list",
        {"path": "$.cc[*]", "match": "all", "in": {"path": "$.to[*]"}},
        {"cc": ["a"]},
        False,
    ),
    # comparisons: numbers, other paths, times
    ("lt", {"path": "n", "lt": 5}, {"n": 4}, True),
    ("lt boundary", {"path": "n", "lt": 5}, {"n": 5}, False),
    ("lte boundary", {"path": "n", "lte": 5}, {"n": 5}, True),
    ("gte", {"path": "n", "gte": 5}, {"n": 5.5}, True),
    ("a bool is not a number", {"path": "n", "lte": 5}, {"n": True}, False),
    ("text is not a number", {"path": "n", "lte": 5}, {"n": "4"}, False),
    (
        "lte another path",
        {"path": "amount", "lte": {"path": "limit"}},
        {"amount": 3, "limit": 3},
        True,
    ),
    (
        "gt another path",
        {"path": "amount", "gt": {"path": "limit"}},
        {"amount": 3, "limit": 3},
        False,
    ),
    ("other path missing", {"path": "amount", "lte": {"path": "limit"}}, {"amount": 3}, False),
    (
        "end after start",
        {"path": "end", "gt": {"path": "start"}},
        {"start": "2026-12-06T10:00:00Z", "end": "2026-12-06T11:00:00+00:00"},
        True,
    ),
    (
        "end before start",
        {"path": "end", "gt": {"path": "start"}},
        {"start": "2026-12-06T10:00:00Z", "end": "2026-12-06T09:00:00Z"},
        False,
    ),
    (
        "zones are compared as instants",
        {"path": "end", "gt": {"path": "start"}},
        {"start": "2026-12-06T10:00:00+02:00", "end": "2026-12-06T09:00:00Z"},
        True,
    ),
    ("not a time", {"path": "end", "gt": {"path": "start"}}, {"start": "x", "end": "y"}, False),
    ("in the future", {"path": "at", "gt": "now"}, {"at": "2026-12-07"}, True),
    ("in the past", {"path": "at", "gt": "now"}, {"at": "2026-12-05"}, False),
    ("within a day", {"path": "at", "lte": "now+1d"}, {"at": "2026-12-07T11:00:00Z"}, True),
    ("beyond a day", {"path": "at", "lte": "now+1d"}, {"at": "2026-12-07T13:00:00Z"}, False),
    ("after a fixed date", {"path": "at", "gte": "2026-01-01"}, {"at": "2026-06-01"}, True),
    # sum
    ("a + b <= n", {"sum": ["$.a", "$.b"], "lte": 10}, {"a": 4, "b": 6}, True),
    ("a + b > n", {"sum": ["$.a", "$.b"], "lte": 10}, {"a": 4, "b": 7}, False),
    ("sum over a list", {"sum": "$.items[*].price", "lt": 10}, {"items": [{"price": 4}] * 2}, True),
    ("sum of nothing is 0", {"sum": "$.items[*].price", "lte": 0}, {"items": []}, True),
    ("sum of text fails", {"sum": ["$.a"], "lte": 10}, {"a": "1"}, False),
]


@pytest.mark.parametrize(
    ("name", "condition", "args", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_operator(
    name: str, condition: dict[str, Any], args: dict[str, Any], expected: bool
) -> None:
    assert holds(condition, args) is expected


def test_lists_and_vars_are_referenced_by_name() -> None:
    names = {
        "lists": {"payees": NamedList(items=("alice", "bob"))},
        "vars": {"user_domain": "@corp.example", "limit": 100},
    }
    assert holds({"path": "to", "in": "$lists.payees"}, {"to": "bob"}, **names)
    assert not holds({"path": "to", "in": "$lists.payees"}, {"to": "mallory"}, **names)
    assert holds({"path": "to", "endswith": "$vars.user_domain"}, {"to": "a@corp.example"}, **names)
    assert not holds({"path": "to", "endswith": "$vars.user_domain"}, {"to": "a@x"}, **names)
    assert holds({"path": "n", "lte": "$vars.limit"}, {"n": 100}, **names)
    assert not holds({"sum": ["$.a", "$.b"], "lte": "$vars.limit"}, {"a": 99, "b": 2}, **names)
    assert holds({"not": {"path": "to", "in": "$lists.payees"}}, {"to": "eve"}, **names)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"path": "to", "in": "$lists.payee"}, r"unknown list \$lists.payee \(known: payees\)"),
        ({"path": "to", "endswith": "$vars.nope"}, r"unknown variable \$vars.nope"),
        ({"path": "n", "lte": "$vars.domain"}, "is not a number"),
        ({"path": "n", "lte": "yesterday"}, "is not a number, an ISO time"),
        ({"path": "s", "startswith": "$vars.limit"}, "not a string"),
    ],
)
def test_bad_references_fail_at_load_naming_the_rule(
    condition: dict[str, Any], message: str
) -> None:
    names = {"lists": {"payees": NamedList(items=("a",))}, "vars": {"domain": "x", "limit": 3}}
    with pytest.raises(PolicyFileError, match=message) as caught:
        engine([condition], **names)
    assert "rule 'r'" in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"path": "x", "missing": True, "equals": 1}, "missing: true selects nothing"),
        ({"path": "x", "not": {"path": "y", "equals": 1}}, "exactly one of path, not"),
        ({"sum": ["$.a"]}, "sum takes only lt, lte, gt, gte or equals"),
        ({"sum": ["$.a"], "lte": "ten"}, "a bound is a number or a \\$vars reference"),
        ({"not": {"path": "y", "equals": 1}, "equals": 2}, "not takes no other test"),
        ({"any_of": []}, "at least 1 item"),
        ({"state": {"count": "send_*", "lte": 5, "window": "30d"}}, "from 1s to 7d"),
        ({"state": {"count": "send_*", "sum": "$.a", "lte": 5}}, "exactly one of count"),
        ({"state": {"sum": "$.a", "lte": 5}}, "needs tool"),
        ({"state": {"count": "x"}}, "needs a bound"),
        ({"path": "x", "gt": {"path": "$.a[?(@.b)]"}}, "invalid JSON path"),
    ],
)
def test_malformed_conditions_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ArgConstraint.model_validate(fields)


def test_explain_shows_the_lists_and_vars_it_used() -> None:
    e = engine(
        [{"path": "to", "in": "$lists.payees"}, {"path": "memo", "endswith": "$vars.tag"}],
        lists={"payees": NamedList(items=("alice",), topic=True)},
        vars={"tag": "#ok"},
    )
    e.names.live.replace({"payees": {"carol"}})
    trace = e.explain("t", {"to": "carol", "memo": "x #ok"}).rules[0]
    assert trace.matched
    first, second = trace.conditions
    assert '$lists.payees = ["alice"] + from the topic ["carol"]' in first.detail
    assert '$vars.tag = "#ok"' in second.detail


def test_a_topic_list_change_is_seen_by_the_next_decision_without_a_reload() -> None:
    e = engine([{"path": "to", "in": "$lists.payees"}], lists={"payees": NamedList(topic=True)})
    assert e.evaluate("t", {"to": "dave"}).decision == "deny"
    assert e.names.live.replace({"payees": {"dave"}})
    assert e.evaluate("t", {"to": "dave"}).decision == "allow"
    e.names.live.replace({})
    assert e.evaluate("t", {"to": "dave"}).decision == "deny"
