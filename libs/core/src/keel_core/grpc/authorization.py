"""Who may call which RPC: the one table, enforced by ``AuthInterceptor`` on every server.

A row names the service identities (mTLS certificate CN) that may call a method without a
token, and the token roles that may call it. A call that carries a bearer token is judged by
the token alone (a submitter's call through the CLI presents the operator certificate and the
submitter's token); a call without one by its certificate. ``ANY`` admits every authenticated
caller. A method in no row is refused: a new RPC is closed until someone writes its row.
docs/security.md ("## gRPC") shows this table; a test pins that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

ANY = "*"

AGENT_LOOP = "agent-loop"
TOOL_GATEWAY = "tool-gateway"
# The MCP/A2A server (apps/gateway-agents). It is named in NO row on purpose: it only forwards
# callers' tokens to AgentService, and a call with a token is judged by the token alone, so
# without a caller's token its certificate opens a connection and admits nothing but health.
AGENTS_SERVER = "agents-server"
SUBMITTER, REVIEWER, OPERATOR = "submitter", "reviewer", "operator"


@dataclass(frozen=True)
class Rule:
    services: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    def admits_service(self, identity: str) -> bool:
        return ANY in self.services or identity in self.services

    def admits_roles(self, roles: frozenset[str]) -> bool:
        return ANY in self.roles or bool(self.roles & roles)


def _rule(services: tuple[str, ...] = (), roles: tuple[str, ...] = ()) -> Rule:
    return Rule(frozenset(services), frozenset(roles))


_FRONT_DOOR = _rule(roles=(SUBMITTER, OPERATOR))
_REVIEW_READ = _rule(services=(TOOL_GATEWAY, AGENT_LOOP), roles=(REVIEWER, OPERATOR))
# Operators too: `keel memory ingest` fills a tenant's memory (the token's tenant binds it).
_MEMORY = _rule(services=(AGENT_LOOP, TOOL_GATEWAY), roles=(OPERATOR,))
_POLICY = _rule(services=(TOOL_GATEWAY,), roles=(OPERATOR,))
_ANYONE = _rule(services=(ANY,), roles=(ANY,))

AUTHORIZATION: dict[str, Rule] = {
    "/keel.agent.v1.AgentService/Submit": _FRONT_DOOR,
    "/keel.agent.v1.AgentService/Get": _FRONT_DOOR,
    "/keel.agent.v1.AgentService/StreamEvents": _FRONT_DOOR,
    "/keel.agent.v1.AgentService/Cancel": _FRONT_DOOR,
    # Plans are submitted as the caller, like Submit: the token's tenant is the plan's.
    "/keel.agent.v1.AgentService/SubmitPlan": _FRONT_DOOR,
    "/keel.agent.v1.AgentService/GetPlan": _FRONT_DOOR,
    # Operators too: `keel replay --model` asks what a model would answer (it runs nothing).
    "/keel.llm.v1.LLMGateway/Complete": _rule(services=(AGENT_LOOP,), roles=(OPERATOR,)),
    "/keel.llm.v1.LLMGateway/CompleteStream": _rule(services=(AGENT_LOOP,), roles=(OPERATOR,)),
    "/keel.tool.v1.ToolGateway/ListTools": _rule(services=(AGENT_LOOP,)),
    "/keel.tool.v1.ToolGateway/Execute": _rule(services=(AGENT_LOOP,)),
    "/keel.policy.v1.PolicyService/Evaluate": _POLICY,
    "/keel.policy.v1.PolicyService/ExplainRules": _POLICY,
    "/keel.policy.v1.PolicyService/Explain": _POLICY,
    "/keel.memory.v1.MemoryService/Store": _MEMORY,
    "/keel.memory.v1.MemoryService/Retrieve": _MEMORY,
    "/keel.memory.v1.MemoryService/Forget": _MEMORY,
    "/keel.approval.v1.ApprovalService/List": _REVIEW_READ,
    "/keel.approval.v1.ApprovalService/Get": _REVIEW_READ,
    "/keel.approval.v1.ApprovalService/Watch": _REVIEW_READ,
    "/keel.approval.v1.ApprovalService/Resolve": _rule(roles=(REVIEWER,)),
    "/grpc.health.v1.Health/Check": _ANYONE,
    "/grpc.health.v1.Health/Watch": _ANYONE,
}
