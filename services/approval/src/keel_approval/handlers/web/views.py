"""How approvals read on a page: pretty JSON, times, labels. Pure functions, no HTML: the
templates escape everything they are given (Jinja2 autoescape), agent text included."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from keel_approval.domain.models import ApprovalStatus

STATUS_LABELS: dict[ApprovalStatus, str] = {
    "pending": "Pending",
    "approved": "Approved",
    "rejected": "Rejected",
    "modified": "Approved with changes",
    "timed_out": "Timed out",
}


def pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(moment: datetime | None, now: datetime) -> str:
    """ "in 42 min" / "3 h ago": how soon a deadline is, at a glance."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    seconds = (aware - now).total_seconds()
    span = _span(abs(seconds))
    if span == "now":
        return "now"
    return f"in {span}" if seconds > 0 else f"{span} ago"


def _span(seconds: float) -> str:
    if seconds < 45:
        return "now"
    if seconds < 90 * 60:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} days"


def snippet(text: str, limit: int = 280) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def overdue_soon(moment: datetime | None, now: datetime, within_s: float = 600.0) -> bool:
    """Close to its deadline: the list marks it so a reviewer takes it first."""
    if moment is None:
        return False
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (aware - now).total_seconds() <= within_s
