"""Messy model output: fences, tags, trailing text, wrong shapes, schema violations, retry."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest, ToolCall, ToolSpec
from keel_llm_gateway.domain.output_parsing import (
    MalformedOutput,
    parse_model_output,
    parse_with_retry,
    validate_tool_calls,
)

CALCULATOR = ToolSpec(
    name="calculator",
    description="Arithmetic",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
        "additionalProperties": False,
    },
)
CLOCK = ToolSpec(name="clock")
TOOLS = (CALCULATOR, CLOCK)
EXPECTED = {"expression": "17 * 23"}


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "calculator", "arguments": {"expression": "17 * 23"}}',
        '```json\n{"name": "calculator", "arguments": {"expression": "17 * 23"}}\n```',
        '```\n{"tool": "calculator", "args": {"expression": "17 * 23"}}\n```',
        '<tool_call>\n{"name": "calculator", "arguments": {"expression": "17 * 23"}}\n</tool_call>',
        '{"name": "calculator", "arguments": {"expression": "17 * 23"}}\nI hope this helps!',
        'I will compute it: {"name": "calculator", "arguments": {"expression": "17 * 23"}}',
        '{"name": "calculator", "arguments": "{\\"expression\\": \\"17 * 23\\"}"}',
        '{"tool_calls": [{"function": {"name": "calculator", '
        '"arguments": "{\\"expression\\": \\"17 * 23\\"}"}}]}',
        '[{"name": "calculator", "parameters": {"expression": "17 * 23"}}]',
        '<think>which tool?</think>{"name": "calculator", "arguments": {"expression": "17 * 23"}}',
    ],
)
def test_tool_calls_are_found_in_common_shapes(text: str) -> None:
    parsed = parse_model_output(text, TOOLS)
    [call] = parsed.tool_calls
    assert call.name == "calculator"
    assert call.id == "call_0"
    assert json.loads(call.arguments_json) == EXPECTED


def test_prose_before_an_inline_call_is_kept_as_content() -> None:
    parsed = parse_model_output('Let me see. {"name": "clock", "arguments": {}} ok', TOOLS)
    assert parsed.content == "Let me see."
    assert [c.name for c in parsed.tool_calls] == ["clock"]


def test_several_calls_get_numbered_ids() -> None:
    text = (
        '<tool_call>{"name": "clock", "arguments": {}}</tool_call>\n'
        '<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}</tool_call>'
    )
    parsed = parse_model_output(text, TOOLS, call_id_prefix="t3")
    ids = [(c.id, c.name) for c in parsed.tool_calls]
    assert ids == [("t3_0", "clock"), ("t3_1", "calculator")]


@pytest.mark.parametrize(
    ("text", "content"),
    [
        ("The answer is 395.", "The answer is 395."),
        ('{"answer": "The answer is 395."}', "The answer is 395."),
        ('```json\n{"final_answer": "395"}\n```', "395"),
        ("Use `{}` for an empty dict.", "Use `{}` for an empty dict."),
        ("```python\nprint(1)\n```", "```python\nprint(1)\n```"),
        ('Settings look like {"debug": true} here.', 'Settings look like {"debug": true} here.'),
    ],
)
def test_answers_stay_answers(text: str, content: str) -> None:
    parsed = parse_model_output(text, TOOLS)
    assert parsed.tool_calls == ()
    assert parsed.content == content


def test_without_tools_everything_is_an_answer() -> None:
    text = '{"name": "calculator", "arguments": {}}'
    assert parse_model_output(text, ()).content == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"name": "calculator", "arguments": {"expression": "1+1"', "not valid JSON"),
        ('```json\n{"name": "calculator",\n```', "not valid JSON"),
        ('{"name": "weather", "arguments": {}}', "no tool named 'weather'"),
        ('{"name": "calculator", "arguments": {}}', "'expression' is a required property"),
        ('{"name": "calculator", "arguments": {"expression": 7}}', "expression: 7 is not of type"),
        ('{"name": "calculator", "arguments": {"expression": "1", "x": 1}}', "Additional prop"),
        ('{"name": "calculator", "arguments": "{oops"}', "not valid JSON"),
        ('{"name": "calculator", "arguments": [1]}', "must be a JSON object"),
        ('{"thought": "hmm"}', "neither a tool call nor an answer"),
    ],
)
def test_unusable_replies_explain_themselves(text: str, reason: str) -> None:
    with pytest.raises(MalformedOutput) as caught:
        parse_model_output(text, TOOLS)
    assert reason in caught.value.feedback


def test_native_calls_are_validated_too() -> None:
    validate_tool_calls([ToolCall(name="calculator", arguments_json='{"expression": "1"}')], TOOLS)
    with pytest.raises(MalformedOutput, match="not valid JSON"):
        validate_tool_calls([ToolCall(name="calculator", arguments_json="{")], TOOLS)
    with pytest.raises(MalformedOutput, match="required property"):
        validate_tool_calls([ToolCall(name="calculator", arguments_json="{}")], TOOLS)


def test_a_broken_schema_does_not_blame_the_model() -> None:
    odd = ToolSpec(name="odd", parameters={"type": "no-such-type"})
    parsed = parse_model_output('{"name": "odd", "arguments": {"a": 1}}', (odd,))
    assert parsed.tool_calls[0].name == "odd"


REQUEST = CompletionRequest(
    messages=(ChatMessage(role="user", content="What is 17 * 23?"),), tools=TOOLS
)


class Scripted:
    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.seen: list[Sequence[ChatMessage]] = []

    async def __call__(self, messages: Sequence[ChatMessage]) -> str:
        self.seen.append(messages)
        return self.replies.pop(0)


async def test_retry_shows_the_error_and_uses_the_second_reply() -> None:
    generate = Scripted(
        '{"name": "calculator", "arguments": {"expr": "17 * 23"}}',
        '{"name": "calculator", "arguments": {"expression": "17 * 23"}}',
    )
    parsed, generations = await parse_with_retry(generate, REQUEST)
    assert generations == 2
    assert json.loads(parsed.tool_calls[0].arguments_json) == EXPECTED
    retry = generate.seen[1]
    assert retry[:-2] == REQUEST.messages
    assert retry[-2] == ChatMessage(
        role="assistant", content='{"name": "calculator", "arguments": {"expr": "17 * 23"}}'
    )
    assert retry[-1].role == "user"
    assert "'expression' is a required property" in retry[-1].content


async def test_a_good_first_reply_is_not_retried() -> None:
    generate = Scripted("The answer is 391.")
    parsed, generations = await parse_with_retry(generate, REQUEST)
    assert (parsed.content, generations) == ("The answer is 391.", 1)


async def test_two_bad_replies_give_the_raw_text_back() -> None:
    generate = Scripted('{"name": "nope", "arguments": {}}', '{"name": "nope2"  ')
    parsed, generations = await parse_with_retry(generate, REQUEST)
    assert generations == 2
    assert parsed == type(parsed)(content='{"name": "nope2"')
