"""Composition root of the approval service: the only place that wires its parts.

``build(settings, runtime)`` wires the parts onto a runtime (the real one, or
``keel_core.testing.InMemoryRuntime`` in component tests) and starts nothing: the rebuild, the
decisions follower, the deadline sweeper and the web inbox start in a start hook, before gRPC
serves and the request consumer starts; ``serve(settings)`` builds on a ``ServiceRuntime``
and runs it until SIGTERM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_approval.adapters.web_server import InboxServer
from keel_approval.adapters.webhook import WebhookNotifier
from keel_approval.config import Settings
from keel_approval.domain.book import ApprovalBook, Retention
from keel_approval.handlers.auth import ReviewerAuth
from keel_approval.handlers.grpc_servicer import ApprovalServicer
from keel_approval.handlers.kafka_handler import RequestHandler
from keel_approval.handlers.web.routes import Inbox, InboxDenied
from keel_approval.handlers.web.sessions import LoginSessions
from keel_approval.handlers.web.throttle import LoginThrottle
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.arbiter import Arbiter
from keel_approval.usecases.decisions import DeadlineSweeper, Decider
from keel_approval.usecases.intake import RequestIntake, RequestReader
from keel_approval.usecases.startup import BookStartup
from keel_contracts.topics import APPROVAL_DECISIONS, APPROVAL_INTENTS, APPROVAL_REQUESTS
from keel_core import trust
from keel_core.audit import AuditEmitter
from keel_core.grpc.ratelimit import apply_rate_limits
from keel_core.ratelimit import RateLimiter, rule
from keel_core.runtime import Runtime, ServiceRuntime, run_service

SERVICE = "approval"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApprovalParts:
    book: ApprovalBook
    intake: RequestIntake
    decider: Decider
    sweeper: DeadlineSweeper
    inbox: InboxServer | None


def build(settings: Settings, runtime: Runtime) -> ApprovalParts:
    retention = Retention(decided_s=settings.decided_retention_s, decided_max=settings.decided_max)
    book = ApprovalBook(watch_queue_size=settings.watch_queue_size, retention=retention)
    metrics = ApprovalMetrics(runtime.registry)
    metrics.track_pending(lambda: book.pending_count)
    reader = RequestReader(
        default_timeout_s=settings.default_timeout_s, quorum=settings.required_approvals
    )
    auth = ReviewerAuth.from_settings(settings)
    if not auth.enabled:
        log.warning(
            "no reviewer tokens configured (KEEL_APPROVAL_REVIEWER_TOKENS): development mode, "
            "decisions record whatever reviewer the client claims"
        )
    notifier = (
        WebhookNotifier(settings.webhook_url, metrics, timeout_s=settings.webhook_timeout_s)
        if settings.webhook_url
        else None
    )
    material = trust.load(settings.trust, SERVICE)
    signer = material.approval_signer() if material else None
    verifier = material.approval_verifier() if material else None
    decider = Decider(
        book,
        runtime.producer,
        runtime.audit,
        metrics,
        signer=signer,
        verifier=verifier,
        decision_valid_s=settings.decision_valid_s,
    )
    # Replicas that follow the topics decide through the fold of the intents (ADR 0014).
    arbiter = (
        Arbiter(
            book,
            runtime.producer,
            account=decider.account,
            denied=decider.denied,
            signer=signer,
            verifier=verifier,
            decision_valid_s=settings.decision_valid_s,
            grace_s=settings.arbiter_grace_s,
        )
        if settings.follow_decisions
        else None
    )
    if arbiter is not None:
        decider.arbitrate(arbiter)
    intake = RequestIntake(
        book,
        runtime.audit,
        metrics,
        notify=notifier.notify if notifier else None,
        added=arbiter.request_added if arbiter else None,
    )
    sweeper = DeadlineSweeper(decider, settings.deadline_check_interval_s)
    startup = BookStartup(
        book,
        reader,
        decider,
        metrics,
        requests=(
            runtime.follower(APPROVAL_REQUESTS, "rebuild") if settings.rebuild_on_start else None
        ),
        decisions=runtime.follower(APPROVAL_DECISIONS, "decisions"),
        follow=settings.follow_decisions,
        arbiter=arbiter,
        intake=intake,
        intents=runtime.follower(APPROVAL_INTENTS, "intents") if arbiter else None,
    )
    inbox = (
        InboxServer(
            Inbox(
                book,
                decider,
                auth,
                LoginSessions(settings.web_session_ttl_s),
                cookie_secure=settings.web_cookie_secure,
                allowed_hosts=settings.web_allowed_hosts,
                throttle=LoginThrottle(settings.web_login_failures_per_minute),
                on_denied=inbox_denied(runtime.audit),
            ).app(),
            settings.web_host,
            settings.web_port,
            grace_s=settings.shutdown_grace_s,
        )
        if settings.web_enabled
        else None
    )

    async def start() -> None:
        # Runs before gRPC serves and before the request consumer starts.
        await startup.start()
        await sweeper.start()
        if inbox is not None:
            await inbox.start()

    async def stop() -> None:
        if inbox is not None:
            await inbox.stop()
        await sweeper.stop()
        if notifier is not None:
            await notifier.close()

    runtime.on_start(start)
    runtime.on_stop(stop)
    handler = RequestHandler(intake, reader=reader)
    runtime.consume([APPROVAL_REQUESTS], settings.consumer_group, handler.on_request)
    runtime.serve_grpc(
        [
            (
                ApprovalServicer(book, decider, auth=auth),
                approval_pb2_grpc.add_ApprovalServiceServicer_to_server,
                approval_pb2.DESCRIPTOR.services_by_name["ApprovalService"].full_name,
            )
        ]
    )
    # Calls per tenant (docs/rate-limits.md); off until limits are set.
    calls = [rule("/keel.approval.v1.ApprovalService/", "calls")]
    rate_limits = settings.rate_limits.with_default_rules(calls)
    apply_rate_limits(RateLimiter(rate_limits), runtime, SERVICE)
    return ApprovalParts(book, intake, decider, sweeper, inbox)


async def serve(settings: Settings) -> None:
    runtime = ServiceRuntime(SERVICE, settings)
    build(settings, runtime)
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)


def inbox_denied(audit: AuditEmitter) -> InboxDenied:
    """Every refusal of the web inbox lands on the audit topic, as gRPC's do."""

    async def record(client: str, reason: str) -> None:
        await audit.record(
            "security.denied", actor=client, subject="approval inbox", details={"reason": reason}
        )

    return record
