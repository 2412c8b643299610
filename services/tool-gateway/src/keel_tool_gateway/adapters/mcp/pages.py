"""Large MCP outputs read page by page instead of cut for good.

One global cap lost most of a 27,692-character drive listing. An MCP tool's output longer
than its cap is kept here under a random reference, bound to the session and tenant that ran
the call, and the model gets the first page with a line saying how to read the next
(``mcp.<server>._output_page`` with ``{"ref": ..., "page": 2}``). Pages live in this
gateway's memory (bounded count, time-limited): after a restart, or on another replica, a
reference has expired and the model is told so; the first page is in the ledger like any
result.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, Field

from keel_tool_gateway.domain.call_context import current_call
from keel_tool_gateway.domain.registry import Tool, ToolError

PAGE_TOOL = "_output_page"


@dataclass(frozen=True)
class _Stored:
    text: str
    page_chars: int
    tenant: str
    session_id: str
    expires_at: float


class OutputPages:
    """Outputs too long for one answer, by reference (at most ``max_entries``, each kept
    ``ttl_s``)."""

    def __init__(
        self,
        max_entries: int = 256,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, _Stored] = OrderedDict()
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock

    def first_page(self, tool: str, page_tool: str, text: str, page_chars: int) -> str:
        """``text`` itself when it fits; else its first page and how to read the rest."""
        if len(text) <= page_chars:
            return text
        ctx = current_call()
        ref = secrets.token_urlsafe(12)
        self._entries[ref] = _Stored(
            text, page_chars, ctx.tenant, ctx.session_id, self._clock() + self._ttl_s
        )
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return self._page_text(ref, 1, page_tool)

    def page(self, ref: str, number: int, page_tool: str) -> str:
        stored = self._entries.get(ref)
        ctx = current_call()
        if (
            stored is None
            or stored.expires_at < self._clock()
            or (stored.tenant, stored.session_id) != (ctx.tenant, ctx.session_id)
        ):
            # Another session's reference reads as unknown: nothing tells it one exists.
            raise ToolError(f"output reference {ref!r} is unknown or has expired")
        return self._page_text(ref, number, page_tool)

    def _page_text(self, ref: str, number: int, page_tool: str) -> str:
        stored = self._entries[ref]
        size = stored.page_chars
        pages = -(-len(stored.text) // size)
        if not 1 <= number <= pages:
            raise ToolError(f"output {ref!r} has pages 1 to {pages}, not {number}")
        start = (number - 1) * size
        body = stored.text[start : start + size]
        end = start + len(body)
        note = f"\n[page {number} of {pages}: characters {start + 1}-{end} of {len(stored.text)}"
        if number < pages:
            note += f'; the next page: {page_tool} with {{"ref": "{ref}", "page": {number + 1}}}'
        return body + note + "]"


class PageInput(BaseModel):
    ref: str = Field(min_length=1, max_length=64, description="the reference the output named")
    page: int = Field(ge=1, le=100_000, description="the page to read (the first is 1)")


def page_tool(
    server: str, prefix: str, pages: OutputPages, max_output_chars: int
) -> Tool[PageInput]:
    """The reader of one server's paged outputs, mounted as ``<prefix>.<server>._output_page``
    (so profiles and policy rules on ``mcp.<server>.*`` cover it); ``max_output_chars`` fits
    the largest page with its note."""
    name = f"{prefix}.{server}.{PAGE_TOOL}"

    def run(args: PageInput) -> str:
        return pages.page(args.ref, args.page, name)

    return Tool(
        name=name,
        description=(
            f"Read the next page of a long output of an MCP server {server!r} tool; the output "
            "ends with the reference and page number to pass."
        ),
        input_model=PageInput,
        run=run,
        blocking=False,
        effects="read_only",
        max_output_chars=max_output_chars,
    )
