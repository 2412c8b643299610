"""Assembling an OpenAI-compatible ``stream: true`` response (server-sent events) into text
deltas and one final completion.

Tool calls arrive in pieces: the first delta of a call carries its ``index``, ``id`` and
function name, later ones append to ``arguments``; calls are keyed by index because ids are
sent once. Usage comes in a last chunk with no choices when ``stream_options.include_usage`` is
set (servers that ignore it leave usage to the gateway's estimate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from keel_llm_gateway.adapters.tool_names import ToolNames
from keel_llm_gateway.domain.models import ChatMessage, Completion, ToolCall, Usage


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAssembler:
    requested_model: str
    provider: str
    names: ToolNames
    done: bool = False
    _content: list[str] = field(default_factory=list)
    _calls: dict[int, _PartialCall] = field(default_factory=dict)
    _model: str = ""
    _finish: str = ""
    _usage: Usage | None = None

    def feed_line(self, line: str) -> str:
        """One line of the event stream; returns the text it added ("" for none). Comments,
        event names and blank lines are ignored; ``data: [DONE]`` ends the stream."""
        if not line.startswith("data:"):
            return ""
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return ""
        if not data:
            return ""
        return self.feed(json.loads(data))

    def feed(self, chunk: dict[str, Any]) -> str:
        self._model = chunk.get("model") or self._model
        usage = chunk.get("usage")
        if usage:
            self._usage = Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            )
        text = ""
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            self._finish = choice.get("finish_reason") or self._finish
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                self._feed_call(call)
        if text:
            self._content.append(text)
        return text

    def _feed_call(self, call: dict[str, Any]) -> None:
        partial = self._calls.setdefault(int(call.get("index", 0)), _PartialCall())
        partial.id = call.get("id") or partial.id
        function = call.get("function") or {}
        partial.name += function.get("name") or ""
        if function.get("arguments"):
            partial.arguments.append(function["arguments"])

    def completion(self) -> Completion:
        calls = tuple(
            ToolCall(
                id=partial.id or f"call_{index}",
                name=self.names.from_wire(partial.name),
                arguments_json="".join(partial.arguments) or "{}",
            )
            for index, partial in sorted(self._calls.items())
        )
        message = ChatMessage(role="assistant", content="".join(self._content), tool_calls=calls)
        return Completion(
            message=message,
            model=self._model or self.requested_model,
            provider=self.provider,
            usage=self._usage,
            finish_reason=self._finish or ("tool_calls" if calls else "stop"),
        )
