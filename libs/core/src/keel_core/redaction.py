"""Arguments as the audit log keeps them: secrets masked, size bounded (shared by every
service that audits arguments)."""

from __future__ import annotations

import json
import re
from typing import Any

from keel_contracts.canonical import canonical_json, sha256_hex

REDACTED = "[redacted]"
# Keys whose values never reach the audit log; matched anywhere in the key, any case.
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|token|secret|api[_-]?key|authori[sz]ation|credential|private[_-]?key",
    re.IGNORECASE,
)
MAX_AUDIT_ARGUMENT_CHARS = 4000


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if _SECRET_KEY.search(str(key)) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def audit_arguments(arguments_json: str) -> Any:
    """Redacted arguments; text that is not JSON is kept only as its size and hash (it may hold
    a secret we cannot find); oversized arguments likewise."""
    try:
        parsed = json.loads(arguments_json) if arguments_json.strip() else {}
    except (ValueError, RecursionError):
        return _summary(arguments_json, "not JSON")
    cleaned = redact(parsed)
    if len(canonical_json(cleaned)) > MAX_AUDIT_ARGUMENT_CHARS:
        return _summary(arguments_json, "too large to keep")
    return cleaned


def audit_value(value: Any) -> Any:
    """``audit_arguments`` for arguments already parsed: redacted, and kept only as a size and
    hash when too large (a record the broker refuses would fail the call it audits)."""
    cleaned = redact(value)
    text = canonical_json(cleaned)
    if len(text) > MAX_AUDIT_ARGUMENT_CHARS:
        return _summary(text, "too large to keep")
    return cleaned


# Whatever a caller puts in one audit record's details: far below the broker's 1 MiB record.
MAX_AUDIT_DETAILS_CHARS = 64_000
# An actor or subject is a name; one longer than this is cut (with its length said).
MAX_AUDIT_NAME_CHARS = 1_000


def bounded_details(details: dict[str, Any]) -> dict[str, Any]:
    """The details as given, or their size and hash when too large to keep: an audit record
    the broker refuses would fail (or, failing closed, block) the call it audits."""
    text = canonical_json(details)
    if len(text) > MAX_AUDIT_DETAILS_CHARS:
        return _summary(text, "too large to keep")
    return details


def bounded_name(name: str) -> str:
    if len(name) <= MAX_AUDIT_NAME_CHARS:
        return name
    return f"{name[:MAX_AUDIT_NAME_CHARS]}… [{len(name)} characters]"


def _summary(text: str, why: str) -> dict[str, Any]:
    return {"_omitted": why, "chars": len(text), "sha256": sha256_hex(text)}
