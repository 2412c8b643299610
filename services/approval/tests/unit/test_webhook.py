"""Webhook notifications against a local HTTP server."""

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from keel_approval.adapters.webhook import WebhookNotifier
from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.kafka_handler import RequestHandler
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.intake import RequestIntake
from keel_contracts.events import ApprovalRequested, Envelope
from keel_core.testing import in_memory_audit


class Hook:
    def __init__(self, status: int) -> None:
        self.status = status
        self.bodies: list[dict[str, Any]] = []


@pytest.fixture
def hook_server() -> Iterator[tuple[str, Hook]]:
    hook = Hook(200)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers["Content-Length"])
            hook.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(hook.status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", hook
    server.shutdown()
    server.server_close()


def envelope(approval_id: str) -> Envelope:
    event = ApprovalRequested(
        approval_id=approval_id,
        agent_id="agent-1",
        tool_name="send_email",
        arguments={"to": "bob@example.com"},
        reasoning="the user asked for it",
        idempotency_key=f"{approval_id}:0",
    )
    return Envelope.wrap(event, source="agent-loop", session_id="s1")


async def run_requests(url: str, *ids: str) -> tuple[CollectorRegistry, WebhookNotifier]:
    audit, _ = in_memory_audit("approval")
    audit.start()
    registry = CollectorRegistry()
    metrics = ApprovalMetrics(registry)
    notifier = WebhookNotifier(url, metrics, timeout_s=2)
    handler = RequestHandler(RequestIntake(ApprovalBook(), audit, metrics, notify=notifier.notify))
    for approval_id in ids:
        await handler.on_request(envelope(approval_id))
    await notifier.drain()
    await notifier.close()
    await audit.close()
    return registry, notifier


async def test_each_new_request_is_posted_once_as_a_slack_message(
    hook_server: tuple[str, Hook],
) -> None:
    url, hook = hook_server
    registry, _ = await run_requests(url, "ap-1", "ap-1", "ap-2")
    assert len(hook.bodies) == 2
    body = next(b for b in hook.bodies if "ap-1" in b["text"])
    assert "send_email" in body["text"]
    rendered = json.dumps(body["blocks"])
    assert "bob@example.com" in rendered
    assert "the user asked for it" in rendered
    assert (
        registry.get_sample_value("keel_approval_webhook_notifications_total", {"result": "ok"})
        == 2
    )


async def test_a_failing_webhook_is_counted_and_never_blocks_requests(
    hook_server: tuple[str, Hook],
) -> None:
    url, hook = hook_server
    hook.status = 500
    registry, _ = await run_requests(url, "ap-1")
    assert (
        registry.get_sample_value("keel_approval_webhook_notifications_total", {"result": "error"})
        == 1
    )


async def test_an_unreachable_webhook_is_counted() -> None:
    registry, _ = await asyncio.wait_for(run_requests("http://127.0.0.1:9/hook", "ap-1"), 5)
    assert (
        registry.get_sample_value("keel_approval_webhook_notifications_total", {"result": "error"})
        == 1
    )


HOSTILE = (
    "<!channel> <@U024BE7LH> please approve: <https://evil.example/login|Approve here> "
    "*URGENT* _now_ ~really~ ```close the block``` visit https://evil.example/x?a=1&b=2 "
    "or www.evil.example or mailto:boss@evil.example"
)


async def test_hostile_reasoning_and_arguments_carry_no_link_mention_or_markup(
    hook_server: tuple[str, Hook],
) -> None:
    """What the model wrote reaches the reviewers' channel through the real notifier as inert
    text: no `<...>` control sequence (links, @channel, user mentions), no scheme Slack would
    link, no mrkdwn markup, no way out of the arguments' code block, and no previews."""
    url, hook = hook_server
    audit, _ = in_memory_audit("approval")
    audit.start()
    notifier = WebhookNotifier(url, ApprovalMetrics(CollectorRegistry()), timeout_s=2)
    handler = RequestHandler(
        RequestIntake(
            ApprovalBook(), audit, ApprovalMetrics(CollectorRegistry()), notify=notifier.notify
        )
    )
    event = ApprovalRequested(
        approval_id="ap-9",
        agent_id="agent-1",
        tool_name="send_email",
        arguments={"body": HOSTILE},
        reasoning=HOSTILE,
        idempotency_key="ap-9:0",
    )
    await handler.on_request(Envelope.wrap(event, source="agent-loop", session_id="s1"))
    await notifier.drain()
    await notifier.close()
    await audit.close()

    [body] = hook.bodies
    assert body["unfurl_links"] is False
    assert body["unfurl_media"] is False
    texts = [body["text"]]
    for block in body["blocks"]:
        texts += [block["text"]["text"]] if "text" in block else []
        texts += [field["text"] for field in block.get("fields", [])]
        texts += [element["text"] for element in block.get("elements", [])]
    [reasoning] = [t for t in texts if "please approve" in t and "```" not in t]
    [arguments] = [t for t in texts if t.startswith("```")]
    for text in (reasoning, arguments):
        assert "<" not in text
        assert ">" not in text
        assert "://" not in text
        assert "www." not in text
        assert "mailto:" not in text
        assert "&b=2" not in text  # a bare & is escaped as Slack requires
    assert not any(mark in reasoning for mark in "*_~`")
    # The arguments stay one code block: only its own fences are backticks.
    assert arguments.startswith("```")
    assert arguments.endswith("```")
    assert "`" not in arguments[3:-3]
    # The text is still there for the reviewer to read, as data.
    assert "please approve" in reasoning
    assert "Approve here" in reasoning
    assert "evil.example" in reasoning
