"""The prompt a local Qwen2.5 model reads: ChatML turns, the tool catalog, optional examples.

Measured on Qwen2.5-Coder 0.5B and 1.5B (bench/local_model.py), what makes a small model call
the right tool with valid arguments is, in order: Qwen2.5's own tool-calling wording and tags
(``<tools>``, ``<tool_call>``, ``<tool_response>``), which it was trained on; and each tool shown
as the call to write, with a ``<type: meaning>`` placeholder per argument, rather than as a
JSON schema (given a schema, the 0.5B copies schema keys such as ``"type"`` into its
arguments). Two example exchanges (one with a tool, one without) can be added as real turns
(``few_shot``); whether they help depends on the model, so it is a setting and the bench
measures both.

The tool block comes right after the agent's first system message and before anything that
changes per session (retrieved memory, the goal), so consecutive requests share a long prefix
and llama.cpp reuses its evaluated KV cache for it instead of reading the catalog again.
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
MAX_DEPTH = 3

INSTRUCTIONS = """\
# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags. Each function is \
its description, then its call with a placeholder <type: meaning> for each argument:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags, with real values in place of the placeholders:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>

If no function fits the query, or a <tool_response> already answers it, reply in plain text \
instead."""

# Appended to the last tool results (see build_prompt).
ANSWER_NUDGE = (
    "\n\nAnswer the question above from this result in plain text, or call another function "
    "if you still need one."
)

# Two exchanges shown before the conversation when few_shot is on: one needs a tool (and
# answers from its response), one does not.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("user", "How many days are there from 2024-01-01 to 2024-03-01?"),
    (
        "assistant",
        '<tool_call>\n{"name": "days_between", "arguments": '
        '{"start": "2024-01-01", "end": "2024-03-01"}}\n</tool_call>',
    ),
    ("user", "<tool_response>\n60\n</tool_response>"),
    ("assistant", "There are 60 days from 2024-01-01 to 2024-03-01."),
    ("user", "Say hi to the team."),
    ("assistant", "Hi team!"),
)


def neutralise(text: str) -> str:
    """``text`` with control-token spellings defused (``<|im_end|>`` becomes ``<im_end>``)."""
    return _CONTROL.sub(r"<\1>", text)


def tool_line(tool: ToolSpec) -> str:
    """A tool as its description, then the call to write with a placeholder per argument:
    ``{"name": "calculator", "arguments": {"expression": <string: Arithmetic ...>}}``."""
    call = f'{{"name": {json.dumps(tool.name)}, "arguments": {_arguments(tool.parameters, 0)}}}'
    description = " ".join(tool.description.split())
    return f"{tool.name}: {description}\n{call}" if description else call


def placeholder(schema: Any, *, required: bool = True, depth: int = 0) -> str:
    """What to write for one argument: nested objects and arrays keep their shape, leaves
    become ``<type[, optional][, default X]: description>``."""
    schema = compact_schema(schema) if depth == 0 else schema
    if not isinstance(schema, dict):
        return "<value>"
    kind = schema.get("type")
    if kind == "object" and "properties" in schema and depth < MAX_DEPTH:
        return _arguments(schema, depth + 1)
    if kind == "array" and isinstance(schema.get("items"), dict) and depth < MAX_DEPTH:
        return f"[{placeholder(schema['items'], depth=depth + 1)}, ...]"
    if "enum" in schema:
        label = " or ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    elif isinstance(kind, list):
        label = " or ".join(str(k) for k in kind)
    else:
        label = str(kind or "value")
    if not required:
        label += ", optional"
    if "default" in schema:
        label += f", default {json.dumps(schema['default'], ensure_ascii=False)}"
    description = " ".join(str(schema.get("description", "")).split())
    return f"<{label}: {description}>" if description else f"<{label}>"


def _arguments(schema: Any, depth: int) -> str:
    schema = compact_schema(schema) if depth == 0 else schema
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict) or not properties:
        return "{}"
    required = set(schema.get("required", ()))
    fields = (
        f"{json.dumps(name, ensure_ascii=False)}: "
        f"{placeholder(sub, required=name in required, depth=depth + 1)}"
        for name, sub in properties.items()
    )
    return "{" + ", ".join(fields) + "}"


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
    return INSTRUCTIONS.format(tools="\n\n".join(tool_line(t) for t in tools))


def tool_call_text(name: str, arguments_json: str) -> str:
    """A past call as the model would have written it, so its own history stays in format."""
    try:
        arguments: Any = json.loads(arguments_json or "{}")
    except ValueError:
        arguments = arguments_json
    call = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{call}\n</tool_call>"


def build_prompt(
    messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], *, few_shot: bool = False
) -> str:
    """The whole ChatML prompt, ending with an open assistant turn.

    ``few_shot`` adds the two example exchanges (only with tools: without them there is no
    format to show). When the conversation ends with tool results, the catalog is left out
    and the results end with ``ANSWER_NUDGE``: with the catalog in view, the 0.5B model called
    a tool again after every result (3 of 3 cases, e.g. ``calculator("395")``); without it,
    it answered from the result (3 of 3). A call it still writes is parsed as usual.
    """
    leading = 0
    while leading < len(messages) and messages[leading].role == "system":
        leading += 1
    answering = bool(tools) and messages[-1].role == "tool"
    show_tools = bool(tools) and not answering
    system_parts = [m.content for m in messages[:1] if leading]
    if show_tools:
        system_parts.append(tool_instructions(tools))
    system_parts.extend(m.content for m in messages[1:leading])
    turns = [_turn("system", "\n\n".join(system_parts))] if system_parts else []
    if show_tools and few_shot:
        turns.extend(_turn(role, content) for role, content in EXAMPLES)
    turns.extend(_rest(messages[leading:], nudge=ANSWER_NUDGE if answering else ""))
    return "".join(turns) + f"{IM_START}assistant\n"


def _rest(messages: Sequence[ChatMessage], *, nudge: str = "") -> list[str]:
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
        turns.append(_turn("user", "\n".join(responses) + nudge))
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
