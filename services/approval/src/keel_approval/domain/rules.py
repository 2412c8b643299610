"""Per-request rules fixed when a request arrives: when it times out and how many distinct
reviewers must approve it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase


def expires_at(deadline: str, created_at: datetime, default_timeout_s: float) -> datetime:
    """The request's own deadline when it has a readable one, else arrival plus the default.
    A deadline without a zone is read as UTC."""
    if deadline.strip():
        try:
            parsed = datetime.fromisoformat(deadline.strip())
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    base = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    return base + timedelta(seconds=default_timeout_s)


def required_approvals(rules: Mapping[str, int], tool_name: str) -> int:
    """The strictest quorum among the tool-name globs that match; 1 when none does."""
    matching = [n for pattern, n in rules.items() if fnmatchcase(tool_name, pattern)]
    return max([1, *matching])
