"""Composition root of the policy service: the only place that wires its parts.

The shape every service shares: ``build(settings, runtime)`` wires the parts onto a runtime
(the real one, or ``keel_core.testing.InMemoryRuntime`` in component tests) and starts
nothing; ``serve(settings)`` builds on a ``ServiceRuntime`` and runs it until SIGTERM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_contracts.topics import POLICY_LISTS, POLICY_STATE
from keel_core.grpc.ratelimit import apply_rate_limits
from keel_core.ratelimit import RateLimiter, rule
from keel_core.runtime import Runtime, ServiceRuntime, run_service
from keel_policy.adapters.list_topic import TopicLists
from keel_policy.adapters.reloader import PolicyReloader, load_holder
from keel_policy.adapters.state_topic import TopicState
from keel_policy.config import Settings
from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.holder import PolicyHolder
from keel_policy.domain.names import LiveLists
from keel_policy.domain.state import StateLedger
from keel_policy.handlers.grpc_servicer import PolicyServicer
from keel_policy.metrics import PolicyMetrics
from keel_policy.usecase import PolicyDecisions

SERVICE = "policy"


@dataclass(frozen=True)
class PolicyParts:
    holder: PolicyHolder
    reloader: PolicyReloader
    decisions: PolicyDecisions
    lists: TopicLists
    state: TopicState


def build(settings: Settings, runtime: Runtime) -> PolicyParts:
    # Topic-backed lists and state outlive reloads: every engine built gets the same ones.
    live = LiveLists()
    ledger = StateLedger()
    build_engine = partial(PolicyEngine, live=live, state=ledger, clock=time.time)
    holder = load_holder(settings.policy_file, build_engine)
    metrics = PolicyMetrics(runtime.registry)
    lists = TopicLists(runtime.table(POLICY_LISTS), live, settings.lists_refresh_s)
    runtime.on_start(lists.start)
    runtime.on_stop(lists.stop)
    state = TopicState(
        ledger, runtime.follower(POLICY_STATE, "state"), runtime.producer, SERVICE, time.time
    )
    runtime.on_start(state.start)
    reloader = PolicyReloader(
        settings.policy_file,
        holder,
        runtime.audit,
        metrics,
        settings.reload_interval_s,
        build_engine,
    )
    runtime.on_start(reloader.start)
    runtime.on_stop(reloader.stop)
    decisions = PolicyDecisions(holder, runtime.audit, metrics, state)
    servicer = PolicyServicer(decisions)
    runtime.serve_grpc(
        [
            (
                servicer,
                policy_pb2_grpc.add_PolicyServiceServicer_to_server,
                policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name,
            )
        ]
    )
    # Calls per tenant (docs/rate-limits.md); off until limits are set.
    calls = [rule("/keel.policy.v1.PolicyService/", "calls")]
    rate_limits = settings.rate_limits.with_default_rules(calls)
    apply_rate_limits(RateLimiter(rate_limits), runtime, SERVICE)
    return PolicyParts(holder, reloader, decisions, lists, state)


async def serve(settings: Settings) -> None:
    runtime = ServiceRuntime(SERVICE, settings)
    build(settings, runtime)
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)
