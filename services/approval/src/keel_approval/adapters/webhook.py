"""New-request notifications to a webhook (Slack-style ``{"text", "blocks"}`` payload).

Best effort: each POST runs in its own task with a time-out, so a slow or dead webhook never
holds up consuming requests; failures are logged and counted, never retried.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from keel_approval.domain.models import Approval
from keel_approval.metrics import ApprovalMetrics
from keel_contracts.canonical import canonical_json

log = logging.getLogger(__name__)

MAX_ARGUMENTS_CHARS = 1500


def slack_payload(approval: Approval) -> dict[str, Any]:
    text = (
        f"Approval needed: {approval.agent_id} wants to call {approval.tool_name} "
        f"(approval {approval.id})"
    )
    arguments = canonical_json(approval.arguments)
    if len(arguments) > MAX_ARGUMENTS_CHARS:
        arguments = arguments[:MAX_ARGUMENTS_CHARS] + "…"
    fields = [
        f"*Tool:* `{approval.tool_name}`",
        f"*Agent:* {approval.agent_id}",
        f"*Session:* {approval.session_id}",
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
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": approval.reasoning}]}
        )
    return {"text": text, "blocks": blocks}


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
