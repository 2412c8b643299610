"""The web inbox end to end in a real headless browser (Debian's chromium, driven by
Playwright): the approval service runs as its own process on the real broker, requests are
published to keel.approval.requests, a reviewer logs in with a token and decides in the page,
and the decisions are read back from keel.approval.decisions.

Needs /usr/bin/chromium (``deploy/browser/install.sh``); skips, saying so, without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from keel_cli.broker import ADMIN, client_env, start_broker, stop_broker
from keel_cli.stack import free_ports
from keel_contracts.events import ApprovalDecided, ApprovalRequested, Envelope
from keel_contracts.topics import APPROVAL_DECISIONS, APPROVAL_REQUESTS
from keel_core.bus import EventProducer
from keel_core.bus.admin import ensure_topics
from keel_core.bus.reader import read_topic
from keel_core.settings import KafkaSettings
from tests.integration.chaos import REPO, admin_settings, broker_credentials, broker_env

CHROMIUM = Path(os.environ.get("KEEL_CHROMIUM", "/usr/bin/chromium"))
TOKENS = {"tok-alice-0123": "alice", "tok-bob-4567": "bob"}

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing: run deploy/browser/install.sh (Debian's chromium)",
    ),
]


class ApprovalProcess:
    """``python -m keel_approval`` on free ports, with reviewer tokens and a quorum rule, in a
    consumer group of its own (so it sees every request, whatever else shares the broker)."""

    def __init__(self, kafka: KafkaSettings, log_dir: Path, credentials: Path | None) -> None:
        grpc_port, metrics_port, web_port = free_ports(3)
        self.url = f"http://127.0.0.1:{web_port}"
        self.log = log_dir / "approval.log"
        self.env = {
            **os.environ,
            "KEEL_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "KEEL_APPROVAL_GRPC_PORT": str(grpc_port),
            "KEEL_APPROVAL_METRICS_PORT": str(metrics_port),
            "KEEL_APPROVAL_WEB_PORT": str(web_port),
            "KEEL_APPROVAL_CONSUMER_GROUP": f"test-inbox-{uuid.uuid4().hex[:8]}",
            "KEEL_APPROVAL_REVIEWER_TOKENS": json.dumps(TOKENS),
            "KEEL_APPROVAL_REQUIRED_APPROVALS": json.dumps({"wire_*": 2}),
            "PYTHONUNBUFFERED": "1",
        }
        if credentials is not None:  # the module's broker (as the admin: a group of its own)
            self.env.pop("KEEL_KAFKA_PASSWORD", None)
            self.env.update(client_env(credentials, ADMIN))
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "keel_approval"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self, timeout_s: float = 60) -> None:
        self.process = self.spawn()
        async with asyncio.timeout(timeout_s), httpx.AsyncClient() as client:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"approval exited: {self.log.read_text()[-3000:]}")
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)

    async def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.process.wait, 30)
        self.process = None
        return code


@pytest.fixture(scope="module")
async def broker() -> AsyncIterator[tuple[KafkaSettings, Path | None]]:
    """A broker of this module's own. On the session's broker the shared stack runs an approval
    service with other rules (no quorum) and the same keys: it folds this module's votes as a
    replica does (ADR 0014) and writes a decision by its own rules."""
    with tempfile.TemporaryDirectory(prefix="keel-inbox-kafka-") as run_dir:
        env = broker_env(Path(run_dir))
        bootstrap = await asyncio.to_thread(start_broker, REPO, env)
        try:
            settings = admin_settings(env, bootstrap, connect_timeout_s=30)
            await ensure_topics(settings)
            yield settings, broker_credentials(env)
        finally:
            await asyncio.to_thread(stop_broker, REPO, env)


@pytest.fixture(scope="module")
def kafka(broker: tuple[KafkaSettings, Path | None]) -> KafkaSettings:
    return broker[0]


@pytest.fixture(scope="module")
async def service(
    broker: tuple[KafkaSettings, Path | None],
) -> AsyncIterator[ApprovalProcess]:
    kafka, credentials = broker
    with tempfile.TemporaryDirectory(prefix="keel-inbox-") as log_dir:
        process = ApprovalProcess(kafka, Path(log_dir), credentials)
        await process.start()
        try:
            yield process
        finally:
            if process.process is not None:
                assert await process.stop() == 0, process.log.read_text()[-3000:]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # --no-sandbox: the test runs as root, where chromium's sandbox refuses to start.
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()  # fresh cookies: every test logs in
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def publish_request(kafka: KafkaSettings, **fields: Any) -> tuple[str, str]:
    """A request as the agent loop publishes it; returns (approval id, session id)."""
    approval_id, session_id = f"ap-{uuid.uuid4().hex[:10]}", f"s-{uuid.uuid4().hex[:10]}"
    event = ApprovalRequested(
        **{
            "approval_id": approval_id,
            "agent_id": "mail-agent",
            "tool_name": "send_email",
            "arguments": {"to": ["bob@example.com", "all@example.com"], "body": "green"},
            "reasoning": "The user asked me to tell Bob the build is green.",
            "consequences": "Sends one email to 2 recipients.",
            "idempotency_key": f"{session_id}:1:0",
            **fields,
        }
    )
    producer = EventProducer(kafka, "test-inbox")
    await producer.start()
    try:
        envelope = Envelope.wrap(event, source="agent-loop", session_id=session_id)
        await producer.publish(APPROVAL_REQUESTS, envelope, key=session_id)
    finally:
        await producer.stop()
    return approval_id, session_id


async def decisions_for(
    kafka: KafkaSettings, approval_id: str, count: int = 1, timeout_s: float = 20
) -> list[ApprovalDecided]:
    async with asyncio.timeout(timeout_s):
        while True:
            found = []
            for record in await read_topic(kafka, APPROVAL_DECISIONS, "test-inbox-read"):
                envelope = Envelope.from_bytes(record.value or b"{}")
                if envelope.type == ApprovalDecided.event_type:
                    decided = envelope.parse(ApprovalDecided)
                    if decided.approval_id == approval_id:
                        found.append(decided)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.3)


async def log_in(page: Page, service: ApprovalProcess, token: str) -> None:
    await page.goto(service.url)
    await expect(page.get_by_role("heading", name="Reviewer login")).to_be_visible()
    await page.fill("#token", token)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Pending approvals")).to_be_visible()


async def open_card(page: Page, approval_id: str, timeout_s: float = 20) -> None:
    """Wait for the request to reach the inbox (the service consumes it), then open it."""
    card = page.locator(f'article[data-approval-id="{approval_id}"]')
    async with asyncio.timeout(timeout_s):
        while await card.count() == 0:
            await asyncio.sleep(0.3)
            await page.reload()
    await card.get_by_role("link", name="Review").click()
    await expect(page.locator(f'article.panel[data-approval-id="{approval_id}"]')).to_be_visible()


async def test_a_reviewer_modifies_the_arguments_in_the_browser(
    service: ApprovalProcess, page: Page, kafka: KafkaSettings
) -> None:
    approval_id, _ = await publish_request(kafka)
    await log_in(page, service, "tok-alice-0123")
    card = page.locator(f'article[data-approval-id="{approval_id}"]')
    async with asyncio.timeout(20):
        while await card.count() == 0:
            await asyncio.sleep(0.3)
            await page.reload()
    await expect(card.locator(".reasoning")).to_have_text(
        "The user asked me to tell Bob the build is green."
    )
    await expect(card.locator(".consequences")).to_have_text("Sends one email to 2 recipients.")
    await expect(card.locator(".arguments")).to_contain_text('"all@example.com"')
    await expect(card.locator(".agent")).to_have_text("mail-agent")

    await open_card(page, approval_id)
    await page.fill("#comment", "only Bob needs this")
    await page.fill("#arguments", '{"to": ["bob@example.com"], "body": "green"')  # no brace
    await page.get_by_role("button", name="Modify and approve").click()
    await expect(page.get_by_role("alert")).to_contain_text("not JSON")
    await expect(page.locator("#comment")).to_have_value("only Bob needs this")

    await page.fill("#arguments", '{"to": ["bob@example.com"], "body": "green"}')
    await page.get_by_role("button", name="Modify and approve").click()
    await expect(page.get_by_role("status")).to_contain_text("Approved with changes")
    await expect(page.locator(f'article[data-approval-id="{approval_id}"]')).to_have_count(0)

    [decided] = await decisions_for(kafka, approval_id)
    assert (decided.outcome, decided.reviewer, decided.comment) == (
        "modified",
        "alice",
        "only Bob needs this",
    )
    assert decided.modified_arguments == {"to": ["bob@example.com"], "body": "green"}

    await page.get_by_role("link", name="History").click()
    row = page.locator(f'tr[data-approval-id="{approval_id}"]')
    await expect(row).to_contain_text("Approved with changes")
    await expect(row.locator(".decided-by")).to_have_text("alice")
    await expect(row.locator(".comment")).to_have_text("only Bob needs this")


async def test_a_reviewer_rejects_and_the_agents_markup_stays_inert(
    service: ApprovalProcess, page: Page, kafka: KafkaSettings
) -> None:
    hostile = '<script>window.pwned = 1</script><img src="x" onerror="window.pwned = 2">'
    approval_id, _ = await publish_request(kafka, reasoning=f"Trust me. {hostile}")
    await log_in(page, service, "tok-bob-4567")
    await open_card(page, approval_id)
    await expect(page.locator(".reasoning")).to_have_text(f"Trust me. {hostile}")
    assert await page.evaluate("typeof window.pwned") == "undefined"
    assert await page.locator("main script, main img").count() == 0

    await page.fill("#comment", "not on a Friday")
    await page.get_by_role("button", name="Reject").click()
    await expect(page.get_by_role("status")).to_contain_text("Rejected: send_email")
    [decided] = await decisions_for(kafka, approval_id)
    assert (decided.outcome, decided.reviewer, decided.comment) == (
        "rejected",
        "bob",
        "not on a Friday",
    )
    await page.goto(f"{service.url}/history")
    await expect(page.locator(f'tr[data-approval-id="{approval_id}"]')).to_contain_text("Rejected")
    assert await page.evaluate("typeof window.pwned") == "undefined"


async def test_a_quorum_vote_survives_a_restart_of_the_service(
    service: ApprovalProcess, page: Page, kafka: KafkaSettings
) -> None:
    approval_id, _ = await publish_request(
        kafka, tool_name="wire_money", arguments={"amount_eur": 25000, "to": "ACME GmbH"}
    )
    await log_in(page, service, "tok-alice-0123")
    await open_card(page, approval_id)
    await page.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status")).to_contain_text("1 more needed")

    assert await service.stop() == 0
    await service.start()

    await log_in(page, service, "tok-bob-4567")  # logins do not survive a restart; votes do
    await open_card(page, approval_id)
    await expect(page.locator(".votes")).to_have_text("1 of 2: alice")
    await page.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status")).to_contain_text("Approved: wire_money")
    [decided] = await decisions_for(kafka, approval_id)
    assert (decided.outcome, decided.reviewer) == ("approved", "alice,bob")
