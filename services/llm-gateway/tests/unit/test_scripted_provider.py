"""The scripted provider: scenario choice, step choice by assistant count, templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keel_contracts.errors import FailedPrecondition
from keel_llm_gateway.adapters.scenario_file import ScenarioFile
from keel_llm_gateway.adapters.scripted import ScriptedProvider
from keel_llm_gateway.config import DEMO_SCENARIOS
from keel_llm_gateway.domain.models import ChatMessage, Completion, CompletionRequest, ToolCall


def script(*scenarios: Any) -> ScriptedProvider:
    return ScriptedProvider(ScenarioFile.model_validate({"scenarios": list(scenarios)}))


def request(goal: str, *history: ChatMessage) -> CompletionRequest:
    return CompletionRequest(
        messages=(
            ChatMessage(role="system", content="You are a test agent."),
            ChatMessage(role="user", content=goal),
            *history,
        )
    )


def assistant(call_id: str = "", name: str = "t") -> ChatMessage:
    calls = (ToolCall(id=call_id, name=name),) if call_id else ()
    return ChatMessage(role="assistant", tool_calls=calls)


def tool(content: str, call_id: str = "c") -> ChatMessage:
    return ChatMessage(role="tool", content=content, tool_call_id=call_id)


def args(completion: Completion, index: int = 0) -> object:
    return json.loads(completion.message.tool_calls[index].arguments_json)


TWO_STEPS = {
    "name": "calc",
    "match": r"what is (?P<expr>[0-9+* ]+)\?",
    "steps": [
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": "{expr}"}}]},
        {"content": "The answer is {last_tool_result}."},
    ],
}


async def test_first_turn_calls_the_tool_with_the_captured_group() -> None:
    completion = await script(TWO_STEPS).complete(request("what is 2 + 3?"))
    assert completion.finish_reason == "tool_calls"
    assert completion.message.content == ""
    [call] = completion.message.tool_calls
    assert (call.id, call.name) == ("call_0_0", "calculator")
    assert args(completion) == {"expression": "2 + 3"}
    assert (completion.provider, completion.model) == ("scripted", "scripted")
    assert completion.usage is None  # the gateway estimates it


async def test_step_is_chosen_by_the_number_of_assistant_messages() -> None:
    provider = script(TWO_STEPS)
    history = (assistant("call_0_0", "calculator"), tool("5", "call_0_0"))
    completion = await provider.complete(request("what is 2 + 3?", *history))
    assert completion.message.content == "The answer is 5."
    assert completion.message.tool_calls == ()
    assert completion.finish_reason == "stop"
    # Stateless: asking again with the same messages gives the same answer.
    again = await provider.complete(request("what is 2 + 3?", *history))
    assert again == completion


async def test_last_tool_result_is_the_latest_tool_message() -> None:
    provider = script(
        {
            "name": "echo",
            "match": "echo",
            "steps": [
                {"tool_calls": [{"name": "a"}, {"name": "b"}]},
                {"content": "got {last_tool_result}"},
            ],
        }
    )
    history = (assistant("call_0_0"), tool("first", "call_0_0"), tool("second", "call_0_1"))
    assert (await provider.complete(request("echo", *history))).message.content == "got second"


async def test_last_tool_result_is_empty_without_tool_messages() -> None:
    provider = script({"name": "e", "match": "e", "steps": [{"content": "[{last_tool_result}]"}]})
    assert (await provider.complete(request("e"))).message.content == "[]"


async def test_numbered_and_named_groups_goal_and_nested_arguments_are_rendered() -> None:
    provider = script(
        {
            "name": "mail",
            "match": r"mail (\S+) about (?P<topic>\w+)(?: urgently)?",
            "steps": [
                {
                    "tool_calls": [
                        {
                            "name": "send",
                            "arguments": {
                                "to": ["{1}"],
                                "meta": {"subject": "Re: {topic}", "all": "{0}", "n": 3},
                                "goal": "{goal}",
                                "literal": '{{1}} {"json": true}',
                            },
                        },
                        {"name": "log", "arguments": {"text": "{2}"}},
                    ]
                }
            ],
        }
    )
    completion = await provider.complete(request("please mail bob@x.org about cats"))
    assert args(completion) == {
        "to": ["bob@x.org"],
        "meta": {"subject": "Re: cats", "all": "mail bob@x.org about cats", "n": 3},
        "goal": "please mail bob@x.org about cats",
        "literal": '{1} {"json": true}',
    }
    assert args(completion, 1) == {"text": "cats"}
    assert [c.id for c in completion.message.tool_calls] == ["call_0_0", "call_0_1"]


async def test_times_repeats_a_step_using_a_group_template() -> None:
    provider = script(
        {
            "name": "bench",
            "match": r"run (\d+) steps",
            "steps": [
                {"tool_calls": [{"name": "noop"}], "times": "{1}"},
                {"content": "done", "times": 1},
            ],
        }
    )
    history: list[ChatMessage] = []
    answers = []
    for turn in range(4):
        completion = await provider.complete(request("run 3 steps", *history))
        answers.append(
            completion.message.tool_calls[0].name
            if completion.message.tool_calls
            else completion.message.content
        )
        history += [assistant(f"call_{turn}_0", "noop"), tool("ok", f"call_{turn}_0")]
        if turn < 3:
            assert completion.message.tool_calls[0].id == f"call_{turn}_0"
    assert answers == ["noop", "noop", "noop", "done"]


async def test_zero_times_skips_the_step() -> None:
    provider = script(
        {
            "name": "bench",
            "match": r"run (\d+) steps",
            "steps": [{"tool_calls": [{"name": "noop"}], "times": "{1}"}, {"content": "done"}],
        }
    )
    assert (await provider.complete(request("run 0 steps"))).message.content == "done"


async def test_past_the_last_step_says_so() -> None:
    provider = script({"name": "hi", "match": "hi", "steps": [{"content": "hello"}]})
    completion = await provider.complete(request("hi", assistant()))
    assert completion.message.content == "Scripted scenario 'hi' has no step 2."
    assert completion.finish_reason == "stop"


async def test_no_matching_scenario_answers_with_a_stop() -> None:
    completion = await script(TWO_STEPS).complete(request("tell me a joke"))
    assert completion.message.content == "No scripted scenario matches the goal: 'tell me a joke'"
    assert completion.finish_reason == "stop"
    assert completion.message.tool_calls == ()


async def test_first_matching_scenario_wins_and_only_the_first_user_message_counts() -> None:
    provider = script(
        {"name": "a", "match": "alpha", "steps": [{"content": "A"}]},
        {"name": "b", "match": "alpha|beta", "steps": [{"content": "B"}]},
    )
    assert (await provider.complete(request("alpha beta"))).message.content == "A"
    later_user = ChatMessage(role="user", content="alpha")
    assert (await provider.complete(request("beta", later_user))).message.content == "B"


async def test_times_template_that_is_not_a_number_fails_clearly() -> None:
    provider = script(
        {
            "name": "bad",
            "match": r"run (\w+)",
            "steps": [{"content": "x", "times": "{1}"}],
        }
    )
    with pytest.raises(FailedPrecondition, match="'bad'.*not a whole number"):
        await provider.complete(request("run many"))


@pytest.mark.parametrize(
    ("goal", "tool_name", "arguments", "result", "answer"),
    [
        (
            "What is (17 * 23) + 4?",
            "calculator",
            {"expression": "(17 * 23) + 4"},
            "395",
            "The answer is 395.",
        ),
        ("What time is it?", "clock", {}, "12:00 UTC", "It is 12:00 UTC."),
        (
            "Compute 2 ** 99999",
            "calculator",
            {"expression": "2 ** 99999"},
            "denied by rule no-huge-powers",
            "The calculator was not allowed: denied by rule no-huge-powers",
        ),
        (
            'Email bob@example.com subject "Q3 report" body "Numbers attached."',
            "send_email",
            {"to": "bob@example.com", "subject": "Q3 report", "body": "Numbers attached."},
            "sent",
            "sent",
        ),
        (
            "Email bob@example.com: the build is green",
            "send_email",
            {
                "to": "bob@example.com",
                "subject": "Message from your Keel agent",
                "body": "the build is green",
            },
            "sent",
            "sent",
        ),
    ],
)
async def test_demo_scenarios(
    goal: str, tool_name: str, arguments: dict[str, str], result: str, answer: str
) -> None:
    provider = ScriptedProvider.from_file(DEMO_SCENARIOS)
    first = await provider.complete(request(goal))
    assert [c.name for c in first.message.tool_calls] == [tool_name]
    assert args(first) == arguments
    second = await provider.complete(request(goal, first.message, tool(result, "call_0_0")))
    assert second.message.content == answer


async def test_demo_bench_runs_n_noops_then_done() -> None:
    provider = ScriptedProvider.from_file(DEMO_SCENARIOS)
    history: list[ChatMessage] = []
    for _ in range(5):
        completion = await provider.complete(request("bench: run 5 no-op steps", *history))
        assert [c.name for c in completion.message.tool_calls] == ["noop"]
        assert args(completion) == {}
        history += [completion.message, tool("null")]
    final = await provider.complete(request("bench: run 5 no-op steps", *history))
    assert final.message.content == "done"


async def test_demo_file_is_inside_the_package() -> None:
    import keel_llm_gateway

    assert DEMO_SCENARIOS.is_relative_to(Path(keel_llm_gateway.__file__).parent)
