"""The prompt a local Qwen2.5 model reads: ChatML turns, the tool catalog and two examples.

Small models follow a format far better when they are shown it. So the system turn lists the
tools (as JSON schemas, one per line), says a reply is either one ``<tool_call>`` or a plain
answer, and shows two short exchanges: one that needs a tool and one that does not. The tags
are Qwen2.5's own tool-calling format, which the model was trained on, and what
``domain.output_parsing`` reads back.

The block with the tools comes right after the agent's first system message and before
anything that changes per session (retrieved memory, the goal), so consecutive requests share
a long prefix and llama.cpp reuses its evaluated KV cache for it instead of reading the
catalog again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from keel_llm_gateway.domain.models import ChatMessage, ToolSpec

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# Qwen's control tokens look like <|name|>. Text from users or tools must never contain one
# as written, or it could close a turn and speak as the system.
_CONTROL = re.compile(r"<\|(\w+)\|>")
_DECODER = json.JSONDecoder()

INSTRUCTIONS = """\
# Tools

You may call one of these tools. Each line is a tool: its name, what it does, and the JSON \
schema of its arguments.
<tools>
{tools}
</tools>

# How to reply

Each reply is exactly ONE of these two:
1. A tool call, when you need a tool's result to answer. Write only this, nothing before or \
after it, with arguments that fit the tool's schema:
<tool_call>
{{"name": "<tool name>", "arguments": {{<arguments>}}}}
</tool_call>
2. A final answer in plain text, when you already know the answer or a tool result \
(<tool_response>) gave it to you. Do not call a tool again for a result you already have.

# Examples

The tools in these examples may not exist now: call only the tools listed above.

Example 1 (needs a tool):
user: How many days are there from 2024-01-01 to 2024-03-01?
assistant: <tool_call>
{{"name": "days_between", "arguments": {{"start": "2024-01-01", "end": "2024-03-01"}}}}
</tool_call>
user: <tool_response>
60
</tool_response>
assistant: There are 60 days from 2024-01-01 to 2024-03-01.

Example 2 (no tool needed):
user: What is the capital of France?
assistant: The capital of France is Paris."""


def neutralise(text: str) -> str:
    """``text`` with control-token spellings defused (``<|im_end|>`` becomes ``<im_end>``)."""
    return _CONTROL.sub(r"<\1>", text)


def tool_line(tool: ToolSpec) -> str:
    """One tool as compact JSON. The schema shown keeps what tells the model what to write
    (types, descriptions, required, enums, defaults) and drops what only a validator needs
    (titles, lengths, patterns, bounds): every token here is read on every request, and the
    arguments are validated against the full schema anyway."""
    entry = {
        "name": tool.name,
        "description": tool.description,
        "parameters": compact_schema(tool.parameters),
    }
    return json.dumps(entry, ensure_ascii=False, separators=(", ", ": "))


def reply_complete(text: str) -> bool:
    """True once the reply holds one whole tool call (tagged, fenced or bare JSON), so
    generation can stop there: small models otherwise tend to repeat the call or invent its
    result, which costs seconds and is thrown away."""
    if not text.rstrip().endswith(("}", ">", "`")):
        return False
    if "</tool_call>" in text:
        return True
    body = text.lstrip()
    if body.startswith("```"):
        body = body.partition("\n")[2].lstrip()
    if not body.startswith("{"):
        return False
    try:
        _DECODER.raw_decode(body)
    except ValueError:
        return False
    return True


def tool_instructions(tools: Sequence[ToolSpec]) -> str:
    return INSTRUCTIONS.format(tools="\n".join(tool_line(t) for t in tools))


def tool_call_text(name: str, arguments_json: str) -> str:
    """A past call as the model would have written it, so its own history stays in format."""
    try:
        arguments: Any = json.loads(arguments_json or "{}")
    except ValueError:
        arguments = arguments_json
    call = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{call}\n</tool_call>"


def build_prompt(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> str:
    """The whole ChatML prompt, ending with an open assistant turn."""
    leading = 0
    while leading < len(messages) and messages[leading].role == "system":
        leading += 1
    system_parts = [m.content for m in messages[:1] if leading]
    if tools:
        system_parts.append(tool_instructions(tools))
    system_parts.extend(m.content for m in messages[1:leading])
    turns = [_turn("system", "\n\n".join(system_parts))] if system_parts else []
    turns.extend(_rest(messages[leading:]))
    return "".join(turns) + f"{IM_START}assistant\n"


def _rest(messages: Sequence[ChatMessage]) -> list[str]:
    turns: list[str] = []
    responses: list[str] = []
    for message in messages:
        if message.role == "tool":
            responses.append(f"<tool_response>\n{message.content}\n</tool_response>")
            continue
        if responses:  # consecutive tool results form one user turn, as in Qwen's template
            turns.append(_turn("user", "\n".join(responses)))
            responses = []
        turns.append(_turn(message.role, _body(message)))
    if responses:
        turns.append(_turn("user", "\n".join(responses)))
    return turns


def _body(message: ChatMessage) -> str:
    calls = [tool_call_text(c.name, c.arguments_json) for c in message.tool_calls]
    return "\n".join(part for part in (message.content, *calls) if part)


def _turn(role: str, content: str) -> str:
    return f"{IM_START}{role}\n{neutralise(content)}{IM_END}\n"


# Validation-only keywords, left out of the schema the model reads.
_VALIDATION_ONLY = frozenset(
    {
        "title", "minLength", "maxLength", "pattern", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "additionalProperties",
        "format", "$schema",
    }
)  # fmt: skip


def compact_schema(schema: Any) -> Any:
    """``schema`` without validation-only keywords; ``anyOf [X, null]`` becomes ``X`` (an
    optional argument is simply left out). Property *names* are never dropped."""
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    options = schema.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1 and isinstance(kept[0], dict):
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return compact_schema({**kept[0], **rest})
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: compact_schema(sub) for name, sub in value.items()}
        elif key not in _VALIDATION_ONLY and not (key == "default" and value is None):
            out[key] = compact_schema(value)
    return out
