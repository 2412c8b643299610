"""What the loop records for ``keel replay``: each step's whole reply, and digests of exactly
the prompt the model was sent; what memory injected; which system prompt ran."""

from __future__ import annotations

from keel_agent_loop.domain import AgentLoop, AgentState, LoopConfig, ToolOutcome, ToolSpec, Usage
from keel_agent_loop.domain.models import ChatMessage, ToolCall
from keel_agent_loop.domain.progress import prompt_record
from keel_agent_loop.testing import (
    FakeMemory,
    FakeTools,
    RecordingSink,
    ScriptedLLM,
    answer,
    call_tools,
)
from keel_contracts.canonical import canonical_json, sha256_hex

SYSTEM = "system prompt for tests"
CATALOG = [ToolSpec(name="calculator", description="arithmetic", parameters_json_schema="{}")]


async def run(system: str = SYSTEM) -> tuple[ScriptedLLM, RecordingSink]:
    llm = ScriptedLLM(
        [
            call_tools(("calculator", {"x": 1}), usage=Usage(prompt_tokens=10, cost_usd=0.5)),
            answer("done", usage=Usage(prompt_tokens=20, completion_tokens=2, cost_usd=0.25)),
        ]
    )
    tools = FakeTools({"calculator": ToolOutcome(status="ok", output="42")}, specs=CATALOG)
    sink = RecordingSink()
    memory = FakeMemory(items=["the user likes short answers"])
    loop = AgentLoop(llm, tools, memory, sink, LoopConfig(system, memory_token_budget=300))
    await loop.run(AgentState(session_id="s1", goal="what is 6*7?"))
    return llm, sink


async def test_each_thought_carries_the_digest_of_the_prompt_the_model_was_sent() -> None:
    llm, sink = await run()
    thoughts = sink.of_kind("thought")
    assert len(thoughts) == len(llm.calls) == 2
    for thought, call in zip(thoughts, llm.calls, strict=True):
        sent = prompt_record(call.messages, call.tools, with_tools=False)
        assert thought.detail["prompt_digest"] == sent["prompt_digest"]
        assert thought.detail["tools_digest"] == sent["tools_digest"]
        assert thought.detail["message_digests"] == sent["message_digests"]
        assert len(thought.detail["message_digests"]) == len(call.messages)
    # The two prompts differ (the second holds the reply and the tool's answer).
    assert thoughts[0].detail["prompt_digest"] != thoughts[1].detail["prompt_digest"]


async def test_the_whole_reply_and_cumulative_usage_are_recorded() -> None:
    _, sink = await run()
    first, second = sink.of_kind("thought")
    assert first.detail["message"] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call_0", "name": "calculator", "arguments_json": '{"x": 1}'}],
        "tool_call_id": "",
        "name": "",
    }
    assert second.detail["message"]["content"] == "done"
    assert first.detail["usage"] == {"prompt_tokens": 10, "completion_tokens": 0, "cost_usd": 0.5}
    assert second.detail["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 2,
        "cost_usd": 0.75,
    }


async def test_the_catalog_is_recorded_once_per_session() -> None:
    _, sink = await run()
    first, second = sink.of_kind("thought")
    assert first.detail["tools"] == [
        {"name": "calculator", "description": "arithmetic", "parameters_json_schema": "{}"}
    ]
    assert "tools" not in second.detail
    assert first.detail["tools_digest"] == second.detail["tools_digest"]


async def test_started_records_injected_memory_and_the_system_prompts_hash_not_its_text() -> None:
    _, sink = await run()
    started = sink.of_kind("started")[0].detail
    assert started["memories"] == ["the user likes short answers"]
    assert started["system_prompt_sha256"] == sha256_hex(SYSTEM)
    assert SYSTEM not in str(sink.events)


async def test_another_system_prompt_changes_the_first_prompt_digest() -> None:
    _, before = await run()
    _, after = await run("another system prompt")
    digests = [s.of_kind("thought")[0].detail["message_digests"] for s in (before, after)]
    assert digests[0][0] != digests[1][0]
    assert digests[0][1:] == digests[1][1:]


def test_the_prompt_digest_is_the_sha256_of_the_canonical_json_of_messages_and_tools() -> None:
    """The documented definition, which anyone can recompute (the loop assembles the text
    from cached parts, so this pins that the assembly is the canonical JSON)."""
    messages = [
        ChatMessage(role="system", content='rules with "quotes" and ü'),
        ChatMessage(
            role="assistant",
            tool_calls=(ToolCall(id="c1", name="calculator", arguments_json='{"x": 1}'),),
        ),
        ChatMessage(role="tool", content="42", tool_call_id="c1", name="calculator"),
    ]
    record = prompt_record(messages, CATALOG, with_tools=False)
    dumped = {
        "messages": [m.model_dump(mode="json") for m in messages],
        "tools": [t.model_dump(mode="json") for t in CATALOG],
    }
    assert record["prompt_digest"] == sha256_hex(canonical_json(dumped))
    assert record["tools_digest"] == sha256_hex(canonical_json(dumped["tools"]))
    assert record["message_digests"] == [
        sha256_hex(canonical_json(m))[:16] for m in dumped["messages"]
    ]
    empty = prompt_record([], [], with_tools=False)
    assert empty["prompt_digest"] == sha256_hex(canonical_json({"messages": [], "tools": []}))
