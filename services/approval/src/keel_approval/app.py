"""Composition root of the approval service: the only place that wires its parts."""

from __future__ import annotations

import logging

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_approval.adapters.topic_reader import read_to_end
from keel_approval.adapters.web_server import InboxServer
from keel_approval.adapters.webhook import WebhookNotifier
from keel_approval.config import Settings
from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.auth import ReviewerAuth
from keel_approval.handlers.decisions import DeadlineSweeper, Decider
from keel_approval.handlers.grpc_servicer import ApprovalServicer
from keel_approval.handlers.kafka_handler import RequestHandler, RequestReader
from keel_approval.handlers.rebuild import rebuild
from keel_approval.handlers.web.routes import Inbox
from keel_approval.handlers.web.sessions import LoginSessions
from keel_approval.metrics import ApprovalMetrics
from keel_contracts.events import Envelope
from keel_contracts.topics import APPROVAL_DECISIONS, APPROVAL_REQUESTS
from keel_core.bus.follower import TopicFollower
from keel_core.runtime import ServiceRuntime, run_service

SERVICE = "approval"

log = logging.getLogger(__name__)


async def serve(settings: Settings) -> None:
    book = ApprovalBook(watch_queue_size=settings.watch_queue_size)
    runtime = ServiceRuntime(SERVICE, settings)
    metrics = ApprovalMetrics(runtime.registry)
    metrics.track_pending(lambda: book.pending_count)
    reader = RequestReader(
        default_timeout_s=settings.default_timeout_s, quorum=settings.required_approvals
    )
    auth = ReviewerAuth(settings.reviewer_tokens)
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
    decider = Decider(book, runtime.producer, runtime.audit, metrics)
    sweeper = DeadlineSweeper(decider, settings.deadline_check_interval_s)
    follower = TopicFollower(settings.kafka, APPROVAL_DECISIONS, "approval-decisions")
    inbox = (
        InboxServer(
            Inbox(
                book,
                decider,
                auth,
                LoginSessions(settings.web_session_ttl_s),
                cookie_secure=settings.web_cookie_secure,
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
        decisions: list[Envelope] = []
        if settings.rebuild_on_start or settings.follow_decisions:
            # Read to the end even without a rebuild: following starts where reading ended.
            decisions = await follower.load()
        if settings.rebuild_on_start:
            requests = await read_to_end(settings.kafka, APPROVAL_REQUESTS, "approval-rebuild")
            metrics.rebuilt.labels(APPROVAL_REQUESTS).set(len(requests))
            metrics.rebuilt.labels(APPROVAL_DECISIONS).set(len(decisions))
            added, applied = rebuild(book, reader, requests, decisions)
            log.info(
                "rebuilt %d requests (%d decisions and votes applied, %d pending)",
                added,
                applied,
                book.pending_count,
            )
        if settings.follow_decisions:
            follower.follow(decider.apply_published)
        await sweeper.start()
        if inbox is not None:
            await inbox.start()

    async def stop() -> None:
        if inbox is not None:
            await inbox.stop()
        await sweeper.stop()
        await follower.stop()
        if notifier is not None:
            await notifier.close()

    runtime.on_start(start)
    runtime.on_stop(stop)
    handler = RequestHandler(
        book,
        runtime.audit,
        metrics,
        reader=reader,
        notify=notifier.notify if notifier else None,
    )
    runtime.consume([APPROVAL_REQUESTS], settings.consumer_group, handler.on_request)
    servicer = ApprovalServicer(
        book, runtime.producer, runtime.audit, metrics, auth=auth, decider=decider
    )
    runtime.serve_grpc(
        [
            (
                servicer,
                approval_pb2_grpc.add_ApprovalServiceServicer_to_server,
                approval_pb2.DESCRIPTOR.services_by_name["ApprovalService"].full_name,
            )
        ]
    )
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)
