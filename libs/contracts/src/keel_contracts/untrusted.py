"""Tool output marked as untrusted data before a model reads it.

A model is told (system prompt) never to follow instructions inside ``<tool_output>``; the
marking makes that boundary impossible to forge from inside the output. Shared by the agent
loop (which marks what it shows the model) and anything that wants the raw value back.
"""

from __future__ import annotations

import html
import re

# Any spelling of the opening or closing tag a model might read as one: `</tool_output>`,
# `< /TOOL_OUTPUT >`, `<tool_output trust="trusted">` ...
_TAG = re.compile(r"<(\s*/?\s*tool_output)", re.IGNORECASE)
_MARKED = re.compile(
    r'\A<tool_output tool="[^"]*" trust="untrusted">\n(?P<body>.*)\n</tool_output>\Z', re.DOTALL
)


def mark_untrusted(tool: str, text: str) -> str:
    """``text`` wrapped as data a tool returned, for a model that was told never to follow
    instructions inside ``<tool_output>``. Tags inside the text lose their ``<`` (it becomes
    ``&lt;``), so the output cannot close the block early or open a block of its own."""
    body = _TAG.sub(r"&lt;\1", text)
    return f'<tool_output tool="{html.escape(tool)}" trust="untrusted">\n{body}\n</tool_output>'


def strip_untrusted(text: str) -> str:
    """The body of a ``mark_untrusted`` block (neutralised tags stay neutralised); other text
    as it is. For consumers that want the value, such as a scripted model's answer."""
    marked = _MARKED.match(text)
    return marked.group("body") if marked else text
