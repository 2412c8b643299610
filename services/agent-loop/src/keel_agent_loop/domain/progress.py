"""Progress events of a session, and what they record so the session can be replayed.

A replay (``keel replay``) re-runs a session through this loop from its events: it needs the
full assistant message of each step and a digest of the prompt that produced it, so it can tell
whether the loop would send the same prompt today (a changed system prompt, memory, catalog or
prompt code shows up as the first step whose digest differs).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from keel_agent_loop.domain.models import ChatMessage, ProgressKind, ToolSpec
from keel_contracts.canonical import canonical_json, sha256_hex
from keel_contracts.events import TaskProgress
from keel_contracts.memo import IdentityMemo

# Per-message digests are cut to this many hex digits: enough to point at the message that
# changed, short enough to repeat for the whole history in every step's event.
MESSAGE_DIGEST_CHARS = 16


def progress_event(kind: ProgressKind, iteration: int, detail: dict[str, Any]) -> TaskProgress:
    return TaskProgress(kind=kind, iteration=iteration, detail=detail)


def prompt_record(
    messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], *, with_tools: bool
) -> dict[str, Any]:
    """The prompt of one LLM call as a replay compares it: ``prompt_digest`` (sha256 of the
    canonical JSON of messages and tool specs), ``tools_digest``, one short digest per message,
    and the catalog itself when ``with_tools`` (once per session: it rarely changes, and the
    digest says when it did)."""
    messages_json = [_canonical(m) for m in messages]
    tools_json = ",".join(_canonical(t) for t in tools)
    # canonical_json({"messages": [...], "tools": [...]}) assembled from cached parts: keys
    # sorted ("messages" < "tools"), no whitespace, so the text is the same.
    prompt = '{"messages":[' + ",".join(messages_json) + '],"tools":[' + tools_json + "]}"
    record: dict[str, Any] = {
        "prompt_digest": sha256_hex(prompt),
        "tools_digest": sha256_hex("[" + tools_json + "]"),
        "message_digests": [_short_digest(text) for text in messages_json],
    }
    if with_tools:
        record["tools"] = [t.model_dump(mode="json") for t in tools]
    return record


# A session's history is re-sent at every step and the catalog is the same each time: each
# message and spec is serialised once (they are frozen), which keeps recording off the per-step
# budget (measured 30-130 µs a step instead of 0.3-0.8 ms).
_canonical = IdentityMemo[ChatMessage | ToolSpec, str](
    lambda model: canonical_json(model.model_dump(mode="json"))
)


@functools.lru_cache(maxsize=8192)
def _short_digest(text: str) -> str:
    return sha256_hex(text)[:MESSAGE_DIGEST_CHARS]
