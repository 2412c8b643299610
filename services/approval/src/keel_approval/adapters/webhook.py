"""New-request notifications to a webhook (Slack-style ``{"text", "blocks"}`` payload).

Best effort: each POST runs in its own task with a time-out, so a slow or dead webhook never
holds up consuming requests; failures are logged and counted, never retried.

Everything in a request that a model or a tool wrote (the reasoning, the arguments, even the
tool and agent names) is escaped before it goes into Slack markup: a reviewer's channel must
not show a live link the model chose (``<http://evil|Approve here>``), ping people
(``<!channel>``, ``<@U123>``) or dress model text as Keel's own words (``*bold*``). URLs are
defanged (``https[:]//…``) and previews are switched off, so Slack never fetches a URL the
model put there. The inbox shows the exact values.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx

from keel_approval.domain.models import Approval
from keel_approval.metrics import ApprovalMetrics
from keel_contracts.canonical import canonical_json

log = logging.getLogger(__name__)

MAX_ARGUMENTS_CHARS = 1500

# Slack's control characters (its documented escaping): no `<...>` link, mention or command.
_CONTROL = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# mrkdwn markup: bold, italic, strike, code, quote. Replaced by look-alikes that Slack does not
# interpret, so model text can neither style itself nor close a code block.
_MARKUP = str.maketrans({"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"})
# Anything Slack would auto-link: a scheme's "://", "mailto:", a "www." prefix.
_LINKISH = re.compile(r"(?i)(://|mailto:|\bwww\.)")


def _defang(match: re.Match[str]) -> str:
    found = match.group(1)
    if found == "://":
        return "[:]//"
    return found[:-1] + "[" + found[-1] + "]"  # mailto[:], www[.]


def slack_escape(text: str, *, in_code: bool = False) -> str:
    """``text`` as inert Slack mrkdwn: control characters escaped, links defanged, and markup
    neutralised (inside a code block only backticks matter: nothing else is rendered there)."""
    escaped = _LINKISH.sub(_defang, text)
    escaped = escaped.translate(_CONTROL)
    if in_code:
        return escaped.replace("`", "\u02cb")
    return escaped.translate(_MARKUP)


def _code(text: str) -> str:
    return f"`{slack_escape(text, in_code=True)}`" if text else "—"


def slack_payload(approval: Approval) -> dict[str, Any]:
    # Names and ids in code spans: shown as written (underscores included), never as markup.
    tool, agent = _code(approval.tool_name), _code(approval.agent_id)
    text = f"Approval needed: {agent} wants to call {tool} (approval {_code(approval.id)})"
    arguments = canonical_json(approval.arguments)
    if len(arguments) > MAX_ARGUMENTS_CHARS:
        arguments = arguments[:MAX_ARGUMENTS_CHARS] + "…"
    arguments = slack_escape(arguments, in_code=True)
    fields = [
        f"*Tool:* {tool}",
        f"*Agent:* {agent}",
        f"*Session:* {_code(approval.session_id)}",
        f"*Approvals needed:* {approval.required_approvals}",
    ]
    if approval.expires_at is not None:
        fields.append(f"*Deadline:* {approval.expires_at.isoformat()}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{arguments}```"}},
    ]
    if approval.reasoning:
        reasoning = slack_escape(approval.reasoning)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": reasoning}]})
    # No previews: unfurling would make Slack fetch a URL the model chose.
    return {"text": text, "blocks": blocks, "unfurl_links": False, "unfurl_media": False}


class WebhookNotifier:
    def __init__(
        self,
        url: str,
        metrics: ApprovalMetrics,
        *,
        timeout_s: float = 5.0,
        max_in_flight: int = 16,
    ) -> None:
        self._url = url
        self._metrics = metrics
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()

    def notify(self, approval: Approval) -> None:
        """Schedule the POST and return at once; dropped (and counted) when too many are
        already in flight, rather than piling up behind a dead endpoint."""
        if len(self._tasks) >= self._max_in_flight:
            self._metrics.webhook.labels("dropped").inc()
            log.warning("webhook busy; not notifying about %s", approval.id)
            return
        task = asyncio.create_task(self._post(approval), name=f"webhook-{approval.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, approval: Approval) -> None:
        try:
            response = await self._client.post(self._url, json=slack_payload(approval))
            response.raise_for_status()
        except (httpx.HTTPError, OSError) as exc:
            self._metrics.webhook.labels("error").inc()
            log.warning("webhook notification for %s failed: %s", approval.id, exc)
        else:
            self._metrics.webhook.labels("ok").inc()

    async def drain(self) -> None:
        """Wait for the notifications in flight (tests; and shutdown, before ``close``)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self, timeout_s: float = 2.0) -> None:
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await self._client.aclose()
