"""Composition root of the approval service: the only place that wires its parts."""

from __future__ import annotations

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_approval.config import Settings
from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.grpc_servicer import ApprovalServicer
from keel_approval.handlers.kafka_handler import RequestHandler
from keel_approval.metrics import ApprovalMetrics
from keel_core.runtime import ServiceRuntime, run_service
from keel_core.topics import APPROVAL_REQUESTS

SERVICE = "approval"


async def serve(settings: Settings) -> None:
    book = ApprovalBook(watch_queue_size=settings.watch_queue_size)
    runtime = ServiceRuntime(SERVICE, settings)
    metrics = ApprovalMetrics(runtime.registry)
    metrics.track_pending(lambda: book.pending_count)
    handler = RequestHandler(book, runtime.audit, metrics)
    runtime.consume([APPROVAL_REQUESTS], settings.consumer_group, handler.on_request)
    servicer = ApprovalServicer(book, runtime.producer, runtime.audit, metrics)
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
