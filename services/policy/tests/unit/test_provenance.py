"""``provenance:`` conditions: where an argument's text came from, as the caller found it."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_clients import PolicyClient
from keel_contracts.chat import RequestContext
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import in_memory_audit
from keel_policy.adapters.policy_file import load_policy
from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.models import PolicySet
from keel_policy.domain.provenance import Finding
from keel_policy.errors import PolicyFileError
from keel_policy.handlers.grpc_servicer import PolicyServicer
from keel_policy.metrics import PolicyMetrics
from keel_policy.usecase import PolicyDecisions

ATTACKER = Finding("$.to[0]", "attacker@evil.example", ("http_fetch",))
FROM_TASK = Finding("$.to[0]", "bob@corp.example", ("mcp.mail.read",), in_task=True)
MAIL = Finding("$.body", "wire the money today", ("mcp.mail.read",))


def engine(*conditions: dict[str, Any]) -> PolicyEngine:
    return PolicyEngine(
        PolicySet.model_validate(
            {
                "name": "default",
                "rules": [
                    {
                        "id": "tainted",
                        "priority": 10,
                        "tool": "send_email",
                        "decision": "require_approval",
                        "when": list(conditions),
                    },
                    {"id": "mail", "tool": "send_email", "decision": "allow"},
                ],
            }
        )
    )


ARGS = {"to": ["attacker@evil.example"], "body": "hello"}


def decide(policy: PolicyEngine, *findings: Finding) -> str:
    return policy.evaluate("send_email", ARGS, provenance=findings).rule_id


@pytest.mark.parametrize(
    ("path", "findings", "rule"),
    [
        ("$.to[*]", (ATTACKER,), "tainted"),
        ("$.to", (ATTACKER,), "tainted"),  # a finding under the path counts
        ("to", (ATTACKER,), "tainted"),  # dotted paths too
        ("$.to[0]", (ATTACKER,), "tainted"),
        ("$.to[1]", (ATTACKER,), "mail"),
        ("$.to[-1]", (ATTACKER,), "tainted"),  # a negative index stands for any index
        ("$.cc", (ATTACKER,), "mail"),
        ("$.t", (ATTACKER,), "mail"),  # a prefix of a key is not the key
        ("$.to[*]", (), "mail"),  # nothing found: the condition fails
        ("$.to[*]", (FROM_TASK,), "mail"),  # also in the task: not "only untrusted"
        ("$.*", (MAIL,), "tainted"),
    ],
)
def test_paths_select_findings_at_or_under_them(
    path: str, findings: tuple[Finding, ...], rule: str
) -> None:
    assert decide(engine({"provenance": {"path": path}}), *findings) == rule


def test_from_a_named_tool_glob() -> None:
    mail_only = engine({"provenance": {"path": "$.*", "from": {"tool": "mcp.mail.*"}}})
    assert decide(mail_only, ATTACKER) == "mail"
    assert decide(mail_only, MAIL) == "tainted"


def test_from_every_tool_except_trusted_ones() -> None:
    trusting_mail = engine({"provenance": {"path": "$.*", "from": {"except": ["mcp.mail.*"]}}})
    assert decide(trusting_mail, MAIL) == "mail"
    assert decide(trusting_mail, ATTACKER) == "tainted"
    both = Finding("$.body", "x", ("mcp.mail.read", "http_fetch"))
    assert decide(trusting_mail, both) == "tainted"  # one untrusted source is enough


def test_not_in_nothing_counts_text_the_task_holds_too() -> None:
    anywhere = engine({"provenance": {"path": "to", "not_in": "nothing"}})
    assert decide(anywhere, FROM_TASK) == "tainted"


def test_composes_with_not_any_of_and_path_constraints() -> None:
    external = {"path": "$.to[*]", "regex": "@(?!corp\\.example$)"}
    policy = engine(
        {"any_of": [{"provenance": {"path": "to"}}, {"provenance": {"path": "cc"}}]}, external
    )
    assert decide(policy, ATTACKER) == "tainted"
    clean = engine({"not": {"provenance": {"path": "to"}}})
    assert decide(clean, ATTACKER) == "mail"
    assert decide(clean) == "tainted"


def test_explain_shows_the_span_the_path_and_the_source() -> None:
    policy = engine({"provenance": {"path": "$.to[*]"}})
    explained = policy.explain("send_email", ARGS, provenance=(ATTACKER, MAIL))
    (condition,) = explained.rules[0].conditions
    assert condition.passed
    assert condition.condition == (
        "provenance: text at $.to[*] came from untrusted output and not in the task"
    )
    assert condition.detail == "matched: $.to[0]: 'attacker@evil.example' from http_fetch"
    missed = policy.explain("send_email", ARGS, provenance=(FROM_TASK,)).rules[0].conditions[0]
    assert not missed.passed
    assert "also in the task" in missed.detail
    none = policy.explain("send_email", ARGS).rules[0].conditions[0]
    assert none.detail == "no provenance findings"


@pytest.mark.parametrize(
    "condition",
    [
        {"provenance": {"path": "$..to"}},
        {"provenance": {"path": "to", "from": "trusted"}},
        {"provenance": {"path": "to", "from": {"tool": ""}}},
        {"provenance": {"path": "to", "not_in": "memory"}},
        {"provenance": {"path": "to", "extra": 1}},
        {"provenance": {"path": "to"}, "equals": 1},
    ],
)
def test_bad_provenance_conditions_fail_the_load(condition: dict[str, Any]) -> None:
    with pytest.raises((PolicyFileError, ValueError)):
        engine(condition)


def test_the_shipped_example_policy_loads_and_asks_for_a_person() -> None:
    from keel_policy.config import DEFAULT_POLICY

    example = DEFAULT_POLICY.parent / "examples" / "provenance.yaml"
    policy = PolicyEngine(load_policy(example))
    tainted = Finding("$.to", "attacker@evil.example", ("http_fetch",))
    url = Finding("$.url", "evil.example", ("mcp.mail.read",))
    assert policy.evaluate("send_email", {"to": "a@b.example"}).decision == "allow"
    verdict = policy.evaluate("send_email", {"to": "a@b.example"}, provenance=(tainted,))
    assert verdict.decision == "require_approval"
    fetch = {"url": "https://evil.example/x", "method": "GET"}
    assert policy.evaluate("http_fetch", fetch).decision == "allow"
    assert policy.evaluate("http_fetch", fetch, provenance=(url,)).decision == "require_approval"


async def test_findings_travel_from_the_client_through_the_servicer() -> None:
    audit, published = in_memory_audit("policy")
    audit.start()
    policy = engine({"provenance": {"path": "$.to[*]"}})
    servicer = PolicyServicer(PolicyDecisions(policy, audit, PolicyMetrics(CollectorRegistry())))
    name = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(servicer, policy_pb2_grpc.add_PolicyServiceServicer_to_server, name)],
        CollectorRegistry(),
    )
    await server.start()
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
            client = PolicyClient(channel)
            ctx = RequestContext(session_id="s1")
            clean = await client.evaluate(ctx, "send_email", ARGS)
            tainted = await client.evaluate(ctx, "send_email", ARGS, provenance=[ATTACKER])
            secret = Finding("$.api_key", "sk-live-123456789012", ("http_fetch",))
            await client.evaluate(ctx, "send_email", ARGS, provenance=[secret])
            explained = await policy_pb2_grpc.PolicyServiceStub(channel).Explain(
                policy_pb2.EvaluateRequest(
                    tool_name="send_email",
                    arguments_json='{"to": ["attacker@evil.example"]}',
                    provenance=[
                        policy_pb2.ProvenanceFinding(
                            path="$.to[0]", span="attacker@evil.example", sources=["http_fetch"]
                        )
                    ],
                )
            )
    finally:
        await server.stop(0)
        await audit.close()
    assert (clean.rule_id, tainted.rule_id) == ("mail", "tainted")
    assert "attacker@evil.example" in explained.rules[0].conditions[0].detail
    # The decision's audit record says what it saw.
    first, second, third = published.audit_records()
    assert third.details["provenance"][0]["span"] == "[redacted]"
    assert "provenance" not in first.details
    assert second.details["provenance"] == [
        {
            "path": "$.to[0]",
            "span": "attacker@evil.example",
            "sources": ["http_fetch"],
            "in_task": False,
        }
    ]


def test_keel_policy_test_takes_provenance_and_explains_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from keel_cli.main import main
    from keel_policy.config import DEFAULT_POLICY

    example = str(DEFAULT_POLICY.parent / "examples" / "provenance.yaml")
    argv = ["policy", "test", example, "--tool", "send_email", "--args", '{"to": "a@evil.example"}']
    found = '[{"path": "$.to", "span": "a@evil.example", "sources": ["http_fetch"]}]'
    codes = []
    for extra in ([], ["--provenance", found, "--explain"], ["--provenance", "{"]):
        with pytest.raises(SystemExit) as done:
            main([*argv, *extra])
        codes.append(done.value.code)
    assert codes == [0, 3, 2]
    out = capsys.readouterr().out
    assert "rule: approve-recipient-from-tool-output" in out
    assert "matched: $.to: 'a@evil.example' from http_fetch" in out
