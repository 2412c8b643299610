"""Screenshots of the approval inbox for the README: docs/images/inbox.png (the pending list)
and docs/images/inbox-detail.png (one request, ready to decide).

The inbox is the service's own Starlette app and uvicorn server, over an in-memory book
filled with realistic requests (no Kafka needed); Debian's chromium renders it.

    .venv/bin/python deploy/browser/screenshot_inbox.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright
from prometheus_client import CollectorRegistry

from keel_approval.adapters.web_server import InboxServer
from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.models import Vote
from keel_approval.handlers.auth import ReviewerAuth
from keel_approval.handlers.web.routes import Inbox
from keel_approval.handlers.web.sessions import LoginSessions
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import Decider
from keel_approval.usecases.intake import RequestReader
from keel_contracts.events import ApprovalRequested, Envelope
from keel_core.testing import InMemoryPublisher, in_memory_audit

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"

REQUESTS: list[tuple[int, int, dict[str, Any]]] = [
    # (minutes ago, minutes to the deadline, request)
    (
        12,
        48,
        {
            "agent_id": "support-agent",
            "tool_name": "send_email",
            "arguments": {
                "to": "jane.doe@example.com",
                "subject": "Your refund for order #48213",
                "body": "Hi Jane, we have refunded EUR 129.00 to your card. It should arrive "
                "within 5 business days.",
            },
            "reasoning": "The customer asked twice about her refund (ticket 8812). The payment "
            "system shows the refund was issued this morning, so I will tell her it is on its "
            "way and when to expect it.",
            "consequences": "Sends 1 email to an external address (jane.doe@example.com).",
        },
    ),
    (
        7,
        5,
        {
            "agent_id": "ops-agent",
            "tool_name": "run_sql",
            "arguments": {
                "database": "billing",
                "statement": "DELETE FROM invoices_draft WHERE created_at < now() - "
                "interval '90 days'",
            },
            "reasoning": "Disk usage on billing-db is at 91%. Draft invoices older than 90 days "
            "are never sent and take 38 GB.",
            "consequences": "Deletes about 1.2 million rows from billing.invoices_draft; cannot "
            "be undone without a restore.",
        },
    ),
    (
        3,
        237,
        {
            "agent_id": "finance-agent",
            "tool_name": "transfer_funds",
            "arguments": {
                "amount": 25000,
                "currency": "EUR",
                "to_iban": "DE89 3704 0044 0532 0130 00",
            },
            "reasoning": "Invoice INV-2291 from ACME GmbH is due tomorrow and was approved by "
            "procurement.",
            "consequences": "Moves EUR 25,000.00 from the operating account to ACME GmbH.",
        },
    ),
]


def build_book() -> ApprovalBook:
    book = ApprovalBook()
    reader = RequestReader(quorum={"transfer_*": 2})
    now = datetime.now(UTC)
    for i, (ago, due, fields) in enumerate(REQUESTS):
        created = now - timedelta(minutes=ago)
        event = ApprovalRequested(
            approval_id=f"ap-{4711 + i}",
            idempotency_key=f"s-{i}:3:0",
            deadline=(created + timedelta(minutes=ago + due)).isoformat(),
            **fields,
        )
        session = f"c0ffee{i}a9e41d2b"
        envelope = Envelope.wrap(event, source="agent-loop", session_id=session)
        book.add_request(reader.read(envelope.model_copy(update={"time": created})))
    book.apply_vote(Vote(approval_id="ap-4713", approvals=("bob",)))
    return book


async def main(out: Path) -> None:
    book = build_book()
    audit, _ = in_memory_audit("approval")
    audit.start()
    decider = Decider(book, InMemoryPublisher(), audit, ApprovalMetrics(CollectorRegistry()))
    inbox = Inbox(book, decider, ReviewerAuth({"demo-token": "alice"}), LoginSessions(600))
    server = InboxServer(inbox.app(), "127.0.0.1", 0)
    await server.start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            await page.goto(url)
            await page.fill("#token", "demo-token")
            await page.click("button[type=submit]")
            await page.wait_for_selector("article.card")
            await page.screenshot(path=str(out / "inbox.png"), full_page=True)
            await page.goto(f"{url}/approvals/ap-4711")
            await page.fill("#comment", "Checked the refund in the payment system.")
            await page.screenshot(path=str(out / "inbox-detail.png"), full_page=True)
            await browser.close()
    finally:
        await server.stop()
        await audit.close()
    print(f"wrote {out / 'inbox.png'} and {out / 'inbox-detail.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    out_dir = parser.parse_args().out
    out_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(out_dir))
