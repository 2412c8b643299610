"""The real servicer on a gRPC server in-process."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_contracts.topics import AUDIT
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryPublisher, in_memory_audit
from keel_policy.adapters.policy_file import load_policy
from keel_policy.adapters.reloader import PolicyReloader, load_holder
from keel_policy.config import DEFAULT_POLICY
from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.holder import PolicyHolder
from keel_policy.handlers.grpc_servicer import PolicyServicer
from keel_policy.metrics import PolicyMetrics
from keel_policy.usecase import PolicyDecisions

SERVICE = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name


@asynccontextmanager
async def serving(
    policy: PolicyEngine | PolicyHolder, registry: CollectorRegistry | None = None
) -> AsyncIterator[tuple[policy_pb2_grpc.PolicyServiceStub, InMemoryPublisher]]:
    audit, published = in_memory_audit("policy")
    audit.start()
    registry = registry or CollectorRegistry()
    servicer = PolicyServicer(PolicyDecisions(policy, audit, PolicyMetrics(registry)))
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(servicer, policy_pb2_grpc.add_PolicyServiceServicer_to_server, SERVICE)],
        CollectorRegistry(),
    )
    await server.start()
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield policy_pb2_grpc.PolicyServiceStub(channel), published
    finally:
        await server.stop(0)
        await audit.close()


def request(tool: str, args: object, **ctx: str) -> policy_pb2.EvaluateRequest:
    return policy_pb2.EvaluateRequest(
        context=common_pb2.RequestContext(**ctx), tool_name=tool, arguments_json=json.dumps(args)
    )


async def test_evaluate_decides_and_audits() -> None:
    async with serving(PolicyEngine(load_policy(DEFAULT_POLICY))) as (stub, published):
        reply = await stub.Evaluate(
            request(
                "calculator",
                {"expression": "2 ** 99999", "api_key": "sk-secret"},
                session_id="s1",
                agent_id="agent-7",
                tenant="acme",
                agent_profile="research",
                traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            timeout=5,
        )
        assert reply.decision == policy_pb2.DECISION_DENY
        assert (reply.rule_id, reply.policy_set) == ("deny-huge-powers", "default")
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.Evaluate(
                policy_pb2.EvaluateRequest(tool_name="calculator", arguments_json="{"), timeout=5
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as not_object:
            await stub.Evaluate(request("calculator", [1, 2]), timeout=5)
        assert not_object.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        rules = await stub.ExplainRules(policy_pb2.ExplainRulesRequest(), timeout=5)
        assert rules.rules[0].id == "deny-huge-powers"
        assert rules.policy_set == "default"
    (record,) = published.audit_records()
    assert record.action == "policy.decision"
    assert (record.actor, record.subject) == ("agent-7", "calculator")
    assert [e.session_id for e in published.envelopes(AUDIT)] == ["s1"]
    assert record.details == {
        "decision": "deny",
        "rule": "deny-huge-powers",
        "reason": "exponentiation can exhaust the calculator's limits",
        "policy_set": "default",
        "tool": "calculator",
        "agent": "agent-7",
        "tenant": "acme",
        "profile": "research",
        "arguments": {"expression": "2 ** 99999", "api_key": "[redacted]"},
    }


SHADOWED = """\
sets:
  - name: default
    rules:
      - {id: allow-send, tool: send_email, decision: allow}
  - name: acme
    tenant: acme
    rules:
      - id: allow-internal
        tool: send_email
        decision: allow
        when:
          - {path: "$.to[*].domain", match: all, equals: example.com}
    shadow:
      extends: acme
      rules:
        - id: approve-big
          priority: 10
          tool: send_email
          decision: require_approval
          when:
            - {path: "$.to[*]", min: 0, regex: never}
        - id: allow-internal
          tool: send_email
          decision: require_approval
"""


async def test_shadow_decisions_are_audited_but_not_enforced(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(SHADOWED)
    registry = CollectorRegistry()
    engine = PolicyEngine(load_policy(path))
    to = {"to": [{"domain": "example.com"}], "password": "hunter2"}
    async with serving(engine, registry) as (stub, published):
        reply = await stub.Evaluate(
            request("send_email", to, tenant="acme", agent_id="a", session_id="s"), timeout=5
        )
        assert (reply.decision, reply.rule_id) == (policy_pb2.DECISION_ALLOW, "allow-internal")
        # The default set has no shadow: one record only.
        await stub.Evaluate(request("send_email", to, agent_id="a"), timeout=5)
    decision, shadow, plain = published.audit_records()
    assert [decision.action, shadow.action, plain.action] == [
        "policy.decision",
        "policy.shadow_decision",
        "policy.decision",
    ]
    assert (decision.details["decision"], decision.details["policy_set"]) == ("allow", "acme")
    assert shadow.details["decision"] == "require_approval"
    assert shadow.details["rule"] == "allow-internal"
    assert shadow.details["policy_set"] == "acme:shadow"
    assert (shadow.details["enforced_decision"], shadow.details["agrees"]) == ("allow", False)
    assert shadow.details["arguments"]["password"] == "[redacted]"
    assert (shadow.actor, shadow.subject) == ("a", "send_email")
    assert [e.session_id for e in published.envelopes(AUDIT)] == ["s", "s", ""]
    sample = registry.get_sample_value(
        "keel_policy_shadow_decisions_total", {"policy_set": "acme", "agrees": "false"}
    )
    assert sample == 1


async def test_explain_over_grpc(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(SHADOWED)
    async with serving(PolicyEngine(load_policy(path))) as (stub, published):
        foreign = {"to": [{"domain": "example.com"}, {"domain": "evil.com"}]}
        reply = await stub.Explain(request("send_email", foreign, tenant="acme"), timeout=5)
        rules = await stub.ExplainRules(policy_pb2.ExplainRulesRequest(tenant="acme"), timeout=5)
    assert reply.verdict.decision == policy_pb2.DECISION_DENY
    assert (reply.verdict.rule_id, reply.verdict.policy_set) == ("default-deny", "acme")
    assert list(reply.selection) == ["tenant=acme profile=default", "tenant=acme profile=*"]
    (trace,) = reply.rules
    assert (trace.rule_id, trace.matched) == ("allow-internal", False)
    assert trace.reason == 'condition 1 failed: $.to[*].domain (all) equals "example.com"'
    assert trace.conditions[0].detail == (
        'values: ["example.com", "evil.com"]; failing: ["evil.com"]'
    )
    assert reply.HasField("shadow")
    assert reply.shadow.decision == policy_pb2.DECISION_REQUIRE_APPROVAL
    assert [r.id for r in rules.rules] == ["allow-internal"]
    assert rules.policy_set == "acme"
    assert published.audit_records() == []  # Explain grants nothing and is not audited


async def test_a_reload_reaches_the_next_request(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("rules: [{id: allow-clock, tool: clock, decision: allow}]\n")
    holder = load_holder(path)
    async with serving(holder) as (stub, _):
        audit, _published = in_memory_audit("policy")
        audit.start()
        reloader = PolicyReloader(path, holder, audit, PolicyMetrics(CollectorRegistry()), 0)
        first = await stub.Evaluate(request("clock", {}), timeout=5)
        path.write_text("rules: [{id: deny-clock, tool: clock, decision: deny}]\n")
        assert await reloader.check() == "reloaded"
        second = await stub.Evaluate(request("clock", {}), timeout=5)
        await audit.close()
    assert (first.rule_id, second.rule_id) == ("allow-clock", "deny-clock")


async def test_oversized_input_is_refused_or_audited_in_bounds() -> None:
    """A tool name past any identifier is INVALID_ARGUMENT; megabytes of arguments are judged
    and audited as a size and hash. Either would otherwise make an audit record the broker
    refuses, and Evaluate would answer INTERNAL (fuzz finding)."""
    async with serving(PolicyEngine(load_policy(DEFAULT_POLICY))) as (stub, published):
        with pytest.raises(grpc.aio.AioRpcError) as long_name:
            await stub.Evaluate(request("t" * 300, {}), timeout=5)
        assert long_name.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert long_name.value.details() == "tool_name is longer than 256 characters"
        reply = await stub.Evaluate(
            request("calculator", {"expression": "1" * 2_000_000}), timeout=5
        )
        assert reply.decision == policy_pb2.DECISION_ALLOW
    (record,) = published.audit_records()
    assert record.details["arguments"]["_omitted"] == "too large to keep"
    assert record.details["arguments"]["chars"] > 2_000_000
