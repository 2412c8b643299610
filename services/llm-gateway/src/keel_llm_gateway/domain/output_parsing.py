"""What a weak model writes, turned into a final answer or validated tool calls.

Small local models (and some hosted ones without native tool calling) answer a tool call as
JSON text, often wrapped in a code fence, a ``<tool_call>`` tag or followed by chatter, and
sometimes with arguments that do not fit the tool. This module finds the JSON, accepts the
common shapes, checks names and arguments against the request's tools (JSON schema), and
otherwise raises ``MalformedOutput`` whose ``feedback`` is written for the model: the caller
shows it once and asks again (``parse_with_retry``), which fixes most slips in one turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from jsonschema import SchemaError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict

from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest, ToolCall, ToolSpec

NAME_KEYS = ("name", "tool", "tool_name", "function")
ARGUMENT_KEYS = ("arguments", "args", "parameters", "input", "tool_input")
ANSWER_KEYS = ("answer", "final_answer", "response", "content")
CALL_FORMAT = '{"name": "<tool name>", "arguments": {...}}'

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)
_DECODER = json.JSONDecoder()
MAX_SCANNED_BRACES = 32


class ParsedOutput(BaseModel):
    model_config = ConfigDict(frozen=True)

    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


class MalformedOutput(Exception):
    """The reply cannot be used as it is; ``feedback`` tells the model why and how to fix it."""

    def __init__(self, feedback: str) -> None:
        super().__init__(feedback)
        self.feedback = feedback


def parse_model_output(
    text: str, tools: Sequence[ToolSpec], *, call_id_prefix: str = "call"
) -> ParsedOutput:
    """A final answer or tool calls. Without tools every reply is an answer, fences and all."""
    cleaned = _THINK.sub("", text).strip()
    if not tools:
        return ParsedOutput(content=cleaned)
    found = _find_json(cleaned)
    if found is None:
        return ParsedOutput(content=cleaned)
    values, prose, whole = found
    calls = [call for value in values for call in _calls_in(value)]
    if calls:
        parsed = tuple(
            _tool_call(call, tools, f"{call_id_prefix}_{index}") for index, call in enumerate(calls)
        )
        return ParsedOutput(content=prose, tool_calls=parsed)
    answer = _answer_in(values[0]) if len(values) == 1 else None
    if answer is not None:
        return ParsedOutput(content=answer)
    if whole:
        raise MalformedOutput(
            f"Your reply was JSON but neither a tool call nor an answer. Call a tool with "
            f"exactly {CALL_FORMAT}, or answer in plain text."
        )
    return ParsedOutput(content=cleaned)


def validate_tool_calls(calls: Sequence[ToolCall], tools: Sequence[ToolSpec]) -> None:
    """Check calls a provider returned natively: known tool, arguments valid for its schema."""
    for call in calls:
        try:
            arguments = json.loads(call.arguments_json or "{}")
        except ValueError as exc:
            raise MalformedOutput(
                f"The arguments of your call to {call.name!r} are not valid JSON ({exc}). "
                f"Call it again with a JSON object as arguments."
            ) from exc
        _check_call(call.name, arguments, tools)


def correction_messages(raw: str, error: MalformedOutput) -> tuple[ChatMessage, ChatMessage]:
    """The faulty reply as the model's own turn, then the reason, so it can correct itself."""
    return (
        ChatMessage(role="assistant", content=raw),
        ChatMessage(
            role="user",
            content=f"Your previous reply could not be used: {error.feedback} Reply again.",
        ),
    )


async def parse_with_retry(
    generate: Callable[[Sequence[ChatMessage]], Awaitable[str]],
    request: CompletionRequest,
    *,
    call_id_prefix: str = "call",
) -> tuple[ParsedOutput, int]:
    """Generate and parse; on ``MalformedOutput`` generate once more with the reason shown.

    A second failure returns the raw text as the answer rather than raising: the loop shows
    it to the model as it is, and the tool gateway still validates anything that runs.
    Returns the parsed output and how many generations it took (1 or 2).
    """
    raw = await generate(request.messages)
    try:
        return parse_model_output(raw, request.tools, call_id_prefix=call_id_prefix), 1
    except MalformedOutput as error:
        messages = (*request.messages, *correction_messages(raw, error))
    retried = await generate(messages)
    try:
        return parse_model_output(retried, request.tools, call_id_prefix=call_id_prefix), 2
    except MalformedOutput:
        return ParsedOutput(content=retried.strip()), 2


def _find_json(text: str) -> tuple[list[Any], str, bool] | None:
    """JSON values in the reply, the prose before them, and whether the JSON was meant to be
    the whole reply (then a decoding error is the model's mistake, not prose)."""
    tags = [t for t in _TAG.findall(text) if t.strip()]
    if tags:
        return [_decode(t) for t in tags], text[: text.find("<tool_call>")].strip(), True
    fences = [f for f in _FENCE.findall(text) if f.strip()]
    if fences:
        outside = _FENCE.sub("", text).strip()
        decoded = [_try_decode(f) for f in fences]
        values = [value for value in decoded if value is not None]
        if not outside and not values and fences[0].lstrip()[:1] in "{[":
            _decode(fences[0])
        if values:
            return values, text[: text.find("```")].strip(), not outside
        return None
    if text[:1] in "{[":
        return [_decode(text)], "", True
    for start in _braces(text):
        value = _try_decode(text[start:])
        if value is not None and _calls_in(value):
            return [value], text[:start].strip(), False
    return None


def _braces(text: str) -> Iterator[int]:
    start = text.find("{")
    for _ in range(MAX_SCANNED_BRACES):
        if start < 0:
            return
        yield start
        start = text.find("{", start + 1)


def _decode(text: str) -> Any:
    """The leading JSON value; trailing text (a model's afterthought) is ignored."""
    try:
        return _DECODER.raw_decode(text.strip())[0]
    except ValueError as exc:
        raise MalformedOutput(
            f"Your reply is not valid JSON ({exc}). Call a tool with exactly {CALL_FORMAT}."
        ) from exc


def _try_decode(text: str) -> Any:
    try:
        return _DECODER.raw_decode(text.strip())[0]
    except ValueError:
        return None


def _calls_in(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [call for item in value for call in _calls_in(item)]
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("tool_calls"), list):
        return _calls_in(value["tool_calls"])
    function = value.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return [function]
    named = any(isinstance(value.get(key), str) for key in NAME_KEYS)
    has_arguments = any(key in value for key in ARGUMENT_KEYS)
    return [value] if named and has_arguments else []


def _answer_in(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    for key in ANSWER_KEYS:
        if isinstance(value.get(key), str):
            return str(value[key])
    return None


def _tool_call(call: dict[str, Any], tools: Sequence[ToolSpec], call_id: str) -> ToolCall:
    name = next(str(call[key]) for key in NAME_KEYS if isinstance(call.get(key), str))
    raw: Any = next((call[key] for key in ARGUMENT_KEYS if key in call), {})
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise MalformedOutput(
                f"The arguments of your call to {name!r} are not valid JSON ({exc})."
            ) from exc
    _check_call(name, raw, tools)
    return ToolCall(id=call_id, name=name, arguments_json=json.dumps(raw))


def _check_call(name: str, arguments: Any, tools: Sequence[ToolSpec]) -> None:
    tool = next((t for t in tools if t.name == name), None)
    if tool is None:
        known = ", ".join(t.name for t in tools)
        raise MalformedOutput(f"There is no tool named {name!r}. The tools are: {known}.")
    if not isinstance(arguments, dict):
        raise MalformedOutput(f"The arguments of {name!r} must be a JSON object.")
    error = _schema_error(tool.parameters, arguments)
    if error is not None:
        raise MalformedOutput(f"The arguments of {name!r} do not fit its schema: {error}.")


def _schema_error(schema: dict[str, Any], arguments: dict[str, Any]) -> str | None:
    """The most relevant violation, or None. A broken schema is not the model's fault: the
    tool gateway reports it when the call runs."""
    try:
        validator = validator_for(schema)(schema)
        validator.check_schema(schema)
    except SchemaError:
        return None
    error = best_match(validator.iter_errors(arguments))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message
