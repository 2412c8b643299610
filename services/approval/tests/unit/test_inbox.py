"""The web inbox over HTTP in process: login with the reviewer tokens, CSRF and same-origin
checks, escaping of agent text, and decisions through the same path as gRPC (published on
keel.approval.decisions and audited)."""

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.auth import ReviewerAuth
from keel_approval.handlers.kafka_handler import RequestHandler
from keel_approval.handlers.web.routes import Inbox
from keel_approval.handlers.web.sessions import LoginSessions
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import Decider
from keel_approval.usecases.intake import RequestIntake, RequestReader
from keel_contracts.events import ApprovalDecided, ApprovalRequested, ApprovalVoted, Envelope
from keel_contracts.topics import APPROVAL_DECISIONS
from keel_core.testing import InMemoryPublisher, in_memory_audit

TOKENS = {"tok-alice": "alice", "tok-bob": "bob", "tok-agent": "agent-1"}
BASE = "http://inbox.test"
XSS = '<script>alert("pwned")</script><img src=x onerror="alert(1)">'


@dataclass
class Rig:
    client: httpx.AsyncClient
    handler: RequestHandler
    book: ApprovalBook
    decisions: InMemoryPublisher
    audit_log: InMemoryPublisher

    async def request(self, approval_id: str = "ap-1", **fields: Any) -> None:
        event = ApprovalRequested(
            **{
                "approval_id": approval_id,
                "agent_id": "agent-1",
                "tool_name": "send_email",
                "arguments": {"to": "bob@example.com", "body": "the build is green"},
                "reasoning": "The user asked me to tell Bob.",
                "consequences": "Sends one email to bob@example.com.",
                "idempotency_key": f"{approval_id}:0",
                **fields,
            }
        )
        await self.handler.on_request(Envelope.wrap(event, source="agent-loop", session_id="s1"))

    async def login(self, token: str = "tok-alice") -> str:
        """Logs in; returns the CSRF token of the login (from a rendered form)."""
        reply = await self.client.post("/login", data={"token": token, "next": "/"})
        assert reply.status_code == 303, reply.text
        page = await self.client.get("/history")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        return found.group(1)

    async def decide(self, csrf: str, action: str, **form: str) -> httpx.Response:
        return await self.client.post(
            "/approvals/ap-1", data={"csrf": csrf, "action": action, **form}
        )

    def published(self) -> list[ApprovalDecided]:
        return [
            e.parse(ApprovalDecided)
            for e in self.decisions.envelopes(APPROVAL_DECISIONS)
            if e.type == ApprovalDecided.event_type
        ]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    audit, audit_log = in_memory_audit("approval")
    audit.start()
    metrics = ApprovalMetrics(CollectorRegistry())
    book = ApprovalBook()
    decisions = InMemoryPublisher()
    decider = Decider(book, decisions, audit, metrics)
    inbox = Inbox(book, decider, ReviewerAuth(TOKENS), LoginSessions(3600))
    handler = RequestHandler(
        RequestIntake(book, audit, metrics), reader=RequestReader(quorum={"wire_*": 2})
    )
    transport = httpx.ASGITransport(app=inbox.app())
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield Rig(client, handler, book, decisions, audit_log)
    await audit.close()


async def test_every_page_needs_a_login(rig: Rig) -> None:
    await rig.request()
    for path in ("/", "/history", "/approvals/ap-1"):
        reply = await rig.client.get(path)
        assert reply.status_code == 303
        assert reply.headers["location"].startswith("/login?next=")
    reply = await rig.client.post("/approvals/ap-1", data={"action": "approve"})
    assert reply.status_code == 403
    assert rig.published() == []


async def test_a_wrong_token_is_refused_and_a_good_one_sets_a_strict_httponly_cookie(
    rig: Rig,
) -> None:
    refused = await rig.client.post("/login", data={"token": "tok-mallory"})
    assert refused.status_code == 401
    assert "names no reviewer" in refused.text
    assert "set-cookie" not in refused.headers
    reply = await rig.client.post("/login", data={"token": "tok-alice", "next": "//evil.test"})
    assert reply.status_code == 303
    assert reply.headers["location"] == "/"  # never an open redirect
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    page = await rig.client.get("/")
    assert page.status_code == 200
    assert 'class="reviewer">alice<' in page.text


async def test_the_list_shows_reasoning_parameters_and_consequences(rig: Rig) -> None:
    await rig.request()
    await rig.login()
    page = await rig.client.get("/")
    assert "send_email" in page.text
    assert "agent-1" in page.text
    assert "The user asked me to tell Bob." in page.text
    assert "Sends one email to bob@example.com." in page.text
    assert '"to": "bob@example.com"' in html.unescape(page.text)  # pretty-printed JSON
    assert 'id="pending-count">1<' in page.text


async def test_agent_text_is_rendered_inert(rig: Rig) -> None:
    await rig.request(
        reasoning=XSS,
        consequences=XSS,
        tool_name="send_email<script>",
        arguments={"body": XSS},
    )
    await rig.login()
    for path in ("/", "/approvals/ap-1"):
        page = await rig.client.get(path)
        assert page.status_code == 200
        assert "<script" not in page.text.lower()
        assert "<img" not in page.text.lower()
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page.text
        # And were anything to slip through, the browser may run no script at all.
        assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_approve_publishes_the_decision_and_moves_it_to_the_history(rig: Rig) -> None:
    await rig.request()
    csrf = await rig.login()
    reply = await rig.decide(csrf, "approve", comment="ship it")
    assert reply.status_code == 303
    [event] = rig.published()
    assert (event.approval_id, event.outcome, event.reviewer, event.comment) == (
        "ap-1",
        "approved",
        "alice",
        "ship it",
    )
    audited = [r for r in rig.audit_log.audit_records() if r.action == "approval.decided"]
    assert audited[0].actor == "alice"
    listed = await rig.client.get(reply.headers["location"])
    assert "Approved: send_email (ap-1)" in listed.text
    assert 'data-approval-id="ap-1"' not in listed.text.split("</h1>", 1)[1]
    history = await rig.client.get("/history")
    assert 'data-approval-id="ap-1"' in history.text
    assert "ship it" in history.text


async def test_modify_publishes_the_reviewers_arguments(rig: Rig) -> None:
    await rig.request()
    csrf = await rig.login()
    edited = '{"to": "bob@example.com", "body": "the build is green (checked)"}'
    reply = await rig.decide(csrf, "modify", comment="clarified", arguments=edited)
    assert reply.status_code == 303
    [event] = rig.published()
    assert event.outcome == "modified"
    assert event.modified_arguments == {
        "to": "bob@example.com",
        "body": "the build is green (checked)",
    }
    page = await rig.client.get("/approvals/ap-1")
    assert "Approved with changes" in page.text
    assert "the build is green (checked)" in page.text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('{"to": "bob@example.com",', "not JSON"),
        ('["bob@example.com"]', "JSON object"),
    ],
)
async def test_modify_with_bad_arguments_shows_why_and_publishes_nothing(
    rig: Rig, arguments: str, message: str
) -> None:
    await rig.request()
    csrf = await rig.login()
    reply = await rig.decide(csrf, "modify", arguments=arguments, comment="typo?")
    assert reply.status_code == 400
    assert message in reply.text
    assert 'role="alert"' in reply.text
    assert arguments.replace('"', "&#34;") in reply.text  # what the reviewer typed is kept
    assert rig.published() == []
    assert rig.book.get("ap-1").pending


async def test_approve_refuses_arguments_edited_in_the_form(rig: Rig) -> None:
    await rig.request()
    csrf = await rig.login()
    reply = await rig.decide(csrf, "approve", arguments='{"to": "everyone@example.com"}')
    assert reply.status_code == 400
    assert "Modify and approve" in reply.text
    assert rig.published() == []


async def test_reject_with_a_comment(rig: Rig) -> None:
    await rig.request()
    csrf = await rig.login()
    await rig.decide(csrf, "reject", comment="not on a Friday")
    [event] = rig.published()
    assert (event.outcome, event.reviewer) == ("rejected", "alice")
    assert event.comment == "not on a Friday"
    again = await rig.decide(csrf, "approve")  # e.g. a second tab left open
    assert again.status_code == 409
    assert "already rejected by alice" in again.text
    assert "Your decision" not in again.text  # the page shows the decision, not a form
    assert len(rig.published()) == 1


async def test_posts_without_the_csrf_token_or_from_another_site_are_refused(rig: Rig) -> None:
    await rig.request()
    csrf = await rig.login()
    assert (await rig.decide("forged", "approve")).status_code == 403
    cross_site = await rig.client.post(
        "/approvals/ap-1",
        data={"csrf": csrf, "action": "approve"},
        headers={"origin": "https://evil.test"},
    )
    assert cross_site.status_code == 403
    assert rig.published() == []
    same_site = await rig.client.post(
        "/approvals/ap-1", data={"csrf": csrf, "action": "approve"}, headers={"origin": BASE}
    )
    assert same_site.status_code == 303


async def test_an_agent_cannot_approve_its_own_request_in_the_inbox(rig: Rig) -> None:
    await rig.request()
    csrf = await rig.login("tok-agent")
    reply = await rig.decide(csrf, "approve")
    assert reply.status_code == 403
    assert "cannot decide its own request" in reply.text
    assert rig.published() == []


async def test_a_quorum_shows_the_votes_so_far_and_publishes_each_vote(rig: Rig) -> None:
    await rig.request(tool_name="wire_money", arguments={"amount": 100})
    csrf = await rig.login("tok-alice")
    await rig.decide(csrf, "approve")
    page = await rig.client.get("/approvals/ap-1")
    assert "1 of 2: alice" in page.text
    assert "Modify and approve" not in page.text
    votes = [
        e.parse(ApprovalVoted)
        for e in rig.decisions.envelopes(APPROVAL_DECISIONS)
        if e.type == ApprovalVoted.event_type
    ]
    assert [v.approvals for v in votes] == [["alice"]]
    await rig.client.post("/logout", data={"csrf": csrf})
    assert (await rig.client.get("/")).status_code == 303  # the login is gone
    csrf = await rig.login("tok-bob")
    await rig.decide(csrf, "approve")
    [event] = rig.published()
    assert (event.outcome, event.reviewer) == ("approved", "alice,bob")


async def test_hostile_reasoning_shows_no_live_link_or_markup(rig: Rig) -> None:
    """Reasoning written to lure a reviewer (an HTML link, a javascript: URL, an event
    handler) is shown as text: the page has no link or element the model made."""
    lure = (
        '<a href="https://evil.example/approve">Approve here</a> '
        '<a href="javascript:alert(1)">x</a> <b onmouseover=alert(1)>bold</b>'
    )
    await rig.request(reasoning=lure, arguments={"url": lure})
    await rig.login()
    for path in ("/", "/approvals/ap-1"):
        page = await rig.client.get(path)
        assert page.status_code == 200
        assert 'href="https://evil.example' not in page.text
        assert 'href="javascript:' not in page.text
        assert "<b " not in page.text
        assert "Approve here" in page.text  # shown, as text
