"""The choke point: no tool runs unless policy said ALLOW for exactly this call.

Order of one execution: idempotency ledger (a hit returns the stored result: no policy call,
nothing runs) -> parse the arguments -> find the tool -> ask policy (any failure fails closed)
-> validate with the tool's input model -> run under a time-out -> render and cap the output.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import ValidationError

from keel_core.canonical import canonical_json, sha256_hex
from keel_tool_gateway.domain.ledger import LedgerEntry, ResultLedger
from keel_tool_gateway.domain.models import ExecutionResult, RequestContext
from keel_tool_gateway.domain.output import cap, render
from keel_tool_gateway.domain.ports import PolicyPort
from keel_tool_gateway.domain.registry import Tool, ToolError, ToolRegistry

log = logging.getLogger(__name__)

POLICY_UNAVAILABLE = "policy unavailable: the call did not run"


class _Outcome(NamedTuple):
    result: ExecutionResult
    # Final outcomes are remembered by idempotency key. Not final: needs_approval (the call may
    # come back approved) and policy unavailable (nothing ran; a retry may succeed).
    final: bool


class ExecutionService:
    def __init__(
        self,
        registry: ToolRegistry,
        policy: PolicyPort,
        ledger: ResultLedger,
        *,
        max_output_chars: int = 8000,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._registry = registry
        self._policy = policy
        self._ledger = ledger
        self._max_output_chars = max_output_chars
        self._clock = clock
        # Calls in progress by idempotency key: a concurrent duplicate waits for the first.
        self._inflight: dict[str, tuple[str, asyncio.Future[ExecutionResult]]] = {}

    async def execute(
        self,
        ctx: RequestContext,
        tool_name: str,
        arguments_json: str,
        idempotency_key: str = "",
        approval_id: str = "",
    ) -> ExecutionResult:
        """Decide and (maybe) run one call. Never raises for anything the caller or the tool
        did: every failure is a result with status ``error``."""
        arguments, parse_error = _parse(arguments_json)
        if not idempotency_key:
            outcome = await self._timed(ctx, tool_name, arguments, parse_error, approval_id)
            return outcome.result
        fingerprint = _fingerprint(tool_name, arguments if not parse_error else arguments_json)
        replay = await self._replay(idempotency_key, fingerprint)
        if replay is not None:
            return replay
        future: asyncio.Future[ExecutionResult] = asyncio.get_running_loop().create_future()
        self._inflight[idempotency_key] = (fingerprint, future)
        try:
            outcome = await self._timed(ctx, tool_name, arguments, parse_error, approval_id)
            if outcome.final:
                self._ledger.put(idempotency_key, LedgerEntry(fingerprint, outcome.result))
            future.set_result(outcome.result)
            return outcome.result
        finally:
            del self._inflight[idempotency_key]
            if not future.done():
                future.cancel()

    async def _replay(self, key: str, fingerprint: str) -> ExecutionResult | None:
        entry = self._ledger.get(key)
        if entry is None and key in self._inflight:
            stored_fingerprint, future = self._inflight[key]
            try:
                result = await asyncio.shield(future)
            except asyncio.CancelledError:
                if not future.cancelled():
                    raise
                return _error(f"a concurrent call with idempotency key {key!r} was cancelled")
            entry = LedgerEntry(stored_fingerprint, result)
        if entry is None:
            return None
        if entry.fingerprint != fingerprint:
            return _error(f"idempotency key {key!r} was used for a different call; nothing ran")
        return entry.result.model_copy(update={"replayed": True})

    async def _timed(
        self,
        ctx: RequestContext,
        tool_name: str,
        arguments: dict[str, Any],
        parse_error: str,
        approval_id: str,
    ) -> _Outcome:
        started = self._clock()
        outcome = await self._decide_and_run(ctx, tool_name, arguments, parse_error, approval_id)
        elapsed_ms = (self._clock() - started) * 1000.0
        return outcome._replace(
            result=outcome.result.model_copy(update={"duration_ms": elapsed_ms})
        )

    async def _decide_and_run(
        self,
        ctx: RequestContext,
        tool_name: str,
        arguments: dict[str, Any],
        parse_error: str,
        approval_id: str,
    ) -> _Outcome:
        if parse_error:
            return _Outcome(_error(parse_error), final=True)
        tool = self._registry.get(tool_name)
        if tool is None:
            return _Outcome(_error(f"unknown tool {tool_name!r}"), final=True)
        try:
            verdict = await self._policy.evaluate(ctx, tool_name, arguments)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, nothing may run
            log.warning("policy evaluation failed for %s, failing closed: %r", tool_name, exc)
            return _Outcome(_error(POLICY_UNAVAILABLE), final=False)
        rule = verdict.rule_id
        if verdict.decision == "deny":
            message = f"denied by policy rule {rule}: {verdict.reason}"
            return _Outcome(ExecutionResult(status="denied", error=message, rule_id=rule), True)
        if verdict.decision == "require_approval":
            message = f"needs approval (policy rule {rule}): {verdict.reason}"
            if approval_id:
                # Checking that the approval covers exactly this call comes with the approval
                # client; until then an approval id unlocks nothing.
                message += f"; approval {approval_id!r} cannot be verified yet, so nothing ran"
            result = ExecutionResult(status="needs_approval", error=message, rule_id=rule)
            return _Outcome(result, final=False)
        result = await self._run(tool, arguments)
        return _Outcome(result.model_copy(update={"rule_id": rule}), final=True)

    async def _run(self, tool: Tool[Any], arguments: dict[str, Any]) -> ExecutionResult:
        try:
            validated = tool.input_model.model_validate(arguments)
        except ValidationError as exc:
            return _error(f"invalid arguments for {tool.name}: {describe(exc)}")
        timeout_s = self._registry.timeout_of(tool)
        scope = asyncio.timeout(timeout_s)
        try:
            async with scope:
                value = await _invoke(tool, validated)
        except TimeoutError as exc:
            if scope.expired():
                return _error(f"{tool.name} timed out after {timeout_s:g}s")
            return _error(f"{tool.name} failed: {_explain(exc)}")
        except Exception as exc:  # noqa: BLE001 - a tool's failure is data for the model
            log.info("tool %s failed: %r", tool.name, exc)
            return _error(f"{tool.name} failed: {_explain(exc)}")
        output, truncated = cap(render(value), self._max_output_chars)
        return ExecutionResult(status="ok", output=output, truncated=truncated)


async def _invoke(tool: Tool[Any], validated: Any) -> Any:
    if inspect.iscoroutinefunction(tool.run):
        return await tool.run(validated)
    # A sync tool runs on a worker thread; on time-out the thread cannot be stopped, only
    # abandoned, which is why long or untrusted work belongs in the sandbox.
    value = await asyncio.to_thread(tool.run, validated)
    if inspect.isawaitable(value):
        value = await value
    return value


def describe(exc: ValidationError) -> str:
    """Pydantic's messages, one per problem, without URLs: ``field: message; ...``."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def _explain(exc: Exception) -> str:
    if isinstance(exc, ToolError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _error(message: str) -> ExecutionResult:
    return ExecutionResult(status="error", error=message)


def _parse(text: str) -> tuple[dict[str, Any], str]:
    """The arguments object, or an error message; empty text means no arguments."""
    if not text.strip():
        return {}, ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, f"arguments are not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
    except (ValueError, RecursionError) as exc:
        return {}, f"arguments are not valid JSON: {type(exc).__name__}"
    if not isinstance(value, dict):
        return {}, f"arguments must be a JSON object, not {_JSON_TYPES.get(type(value), 'null')}"
    return value, ""


_JSON_TYPES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def _fingerprint(tool_name: str, arguments: Any) -> str:
    return sha256_hex(canonical_json({"tool": tool_name, "arguments": arguments}))
