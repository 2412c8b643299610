"""The choke point: no tool runs unless policy said ALLOW (or an approval that covers exactly
this call satisfied REQUIRE_APPROVAL).

Order of one execution: idempotency ledger (a hit returns the stored result: no policy call,
nothing runs; but only a hit of the caller's own tenant and session — another's is refused as a
key reuse and audited ``security.denied`` — and only for a tool the caller's profile is offered)
-> parse the arguments -> find the tool -> verify the approval, when one is sent -> validate
what would run (the caller's arguments, or a reviewer's modified ones) with the tool's input
model, BEFORE policy: a call that cannot run is never answered ``needs_approval``, so no person
is asked about it and a corrected retry needs no second approval -> find which spans of its
arguments came from tool output the session read (``provenance``) -> ask policy, with those
findings (any failure fails closed) -> record the intent of an ``at_most_once`` tool durably
-> run under a time-out, with retries of retryable failures and a circuit breaker
(``resilience``) -> render and cap the output -> record the final result durably (it
replaces the intent) -> return it. A call its breaker refused may instead be answered by one
of the tool's declared alternatives (``_fallback_for``: its own profile, schema, breaker and
policy checks, audited first), recorded under the call's key with the tool that ran.

A process can die between a tool's effect and the write of its result. A retry of that key
then finds no result: a ``read_only`` or ``idempotent`` tool (one that deduplicates by the
key) simply runs again; an ``at_most_once`` tool finds its intent, and is answered "in
progress" (UNAVAILABLE) until the intent's deadline, then "outcome unknown" — never run twice.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import ValidationError

from keel_contracts.canonical import canonical_json, sha256_hex
from keel_tool_gateway.domain.approval import ApprovalCheck, check_approval
from keel_tool_gateway.domain.call_context import ToolContext, calling
from keel_tool_gateway.domain.ledger import LedgerEntry, SecurityDenied, StartedEntry, bound_to
from keel_tool_gateway.domain.models import ExecutionResult, PolicyVerdict, RequestContext
from keel_tool_gateway.domain.output import cap, render
from keel_tool_gateway.domain.ports import ApprovalPort, LedgerPort, PolicyPort, ResiliencePort
from keel_tool_gateway.domain.provenance import Finding, ProvenanceIndex
from keel_tool_gateway.domain.registry import Tool, ToolError, ToolRegistry, ToolUnavailable
from keel_tool_gateway.domain.resilience.errors import AttemptTimedOut, CallFailed, CircuitOpen
from keel_tool_gateway.domain.resilience.fallback import FallbackEvent, Fallbacks, told
from keel_tool_gateway.domain.resilience.rules import resilience_of
from keel_tool_gateway.domain.resilience.single import SingleAttempt
from keel_tool_gateway.errors import ResultNotRecorded, RunInProgress

log = logging.getLogger(__name__)

POLICY_UNAVAILABLE = "policy unavailable: the call did not run"
NO_APPROVAL_SERVICE = "approval ids cannot be verified here (no approval service); nothing ran"
INTENT_NOT_RECORDED = (
    "the call could not be recorded before it ran (ledger unavailable); nothing ran"
)
KEY_OF_ANOTHER = "the idempotency key belongs to another session or tenant"
OUTCOME_UNKNOWN = (
    "outcome unknown: an earlier run of this call was cut short (its gateway stopped) before "
    "its result was recorded; it may or may not have taken effect, and it is not run again"
)


class _Outcome(NamedTuple):
    result: ExecutionResult
    # Final outcomes are remembered by idempotency key. Not final: needs_approval (the call may
    # come back approved), policy unavailable and any refused approval (nothing ran; a retry,
    # or a decision made meanwhile, may change the answer).
    final: bool
    # The breaker refused: nothing ran (a declared alternative may answer instead).
    circuit_open: bool = False
    # The tool that ran when it is not the one called (an alternative): what the ledger keeps.
    ran: str = ""


@dataclass(frozen=True)
class _Call:
    ctx: RequestContext
    tool_name: str
    arguments: dict[str, Any]
    parse_error: str
    key: str
    approval_id: str
    # Of the call as sent (tool and arguments): what a key's intent and result are bound to.
    fingerprint: str
    # The session's task as its caller sent it: the trusted text of provenance checks.
    task_text: str = ""

    @property
    def tenant(self) -> str:
        return self.ctx.tenant or "default"

    def entry(self, result: ExecutionResult, ran: str = "") -> LedgerEntry:
        """The ledger entry of this call: bound to its tenant and session, naming the tool
        that ran (``ran``, an alternative) or else the one called."""
        return LedgerEntry(
            self.fingerprint, ran or self.tool_name, result, self.tenant, self.ctx.session_id
        )


@dataclass(frozen=True)
class _Running:
    fingerprint: str
    task: asyncio.Task[ExecutionResult]
    tenant: str
    session_id: str


@dataclass(frozen=True)
class _Unrecorded:
    entry: LedgerEntry
    session_id: str
    trace: str


class ExecutionService:
    def __init__(
        self,
        registry: ToolRegistry,
        policy: PolicyPort,
        ledger: LedgerPort,
        *,
        approvals: ApprovalPort | None = None,
        max_output_chars: int = 8000,
        resilience: ResiliencePort | None = None,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
        intent_grace_s: float = 10.0,
        instance: str = "",
        on_denied: SecurityDenied | None = None,
        provenance: ProvenanceIndex | None = None,
        fallbacks: Fallbacks | None = None,
    ) -> None:
        self._registry = registry
        self._policy = policy
        self._ledger = ledger
        self._approvals = approvals
        self._max_output_chars = max_output_chars
        # Retries and breakers: inside the run, after the decision; the ledger sees one outcome.
        # Without one wired in (the service wires adapters.resilience), one attempt.
        self._resilience: ResiliencePort = resilience or SingleAttempt()
        self._clock = clock
        # Intents: an at_most_once run is over by its time-out plus this grace (the result's
        # write included); a key whose intent is older was cut short.
        self._wall_clock = wall_clock
        self._intent_grace_s = intent_grace_s
        self._instance = instance or uuid.uuid4().hex
        # Told of each refused key reuse (the service audits it as ``security.denied``).
        self._on_denied = on_denied
        # Where argument text came from, derived from this ledger (None: no findings sent).
        self._provenance = provenance
        # Alternatives of tools whose breaker is open; None: a refused call is only refused.
        self._fallbacks = fallbacks
        # Calls in progress by idempotency key: a concurrent duplicate waits for the first.
        self._inflight: dict[str, _Running] = {}
        # Calls that ran but whose result the ledger refused: written on the next try.
        self._unrecorded: dict[str, _Unrecorded] = {}

    async def execute(
        self,
        ctx: RequestContext,
        tool_name: str,
        arguments_json: str,
        idempotency_key: str = "",
        approval_id: str = "",
        task_text: str = "",
    ) -> ExecutionResult:
        """Decide and (maybe) run one call. Every failure of the caller or the tool is a result
        with status ``error``; the one exception is ``ResultNotRecorded`` (the call ran but the
        ledger could not store it, so the result is withheld until a retry stores it).

        A call with a key runs in its own task: a caller that goes away (deadline, cancel) does
        not cancel it, so its result is still recorded and a retry gets it.
        """
        arguments, parse_error = _parse(arguments_json)
        fingerprint = _fingerprint(tool_name, arguments if not parse_error else arguments_json)
        call = _Call(
            ctx,
            tool_name,
            arguments,
            parse_error,
            idempotency_key,
            approval_id,
            fingerprint,
            task_text,
        )
        if not idempotency_key:
            outcome = await self._timed(call)
            return outcome.result
        entry = await self._stored(idempotency_key)
        if entry is not None:
            refusal = await self._refused_hit(call, entry.belongs_to(call.tenant, ctx.session_id))
            if refusal is not None:
                return refusal
            return _replayed(idempotency_key, entry.fingerprint, fingerprint, entry.result)
        running = self._inflight.get(idempotency_key)
        if running is not None:
            mine = bound_to(running.tenant, running.session_id, call.tenant, ctx.session_id)
            refusal = await self._refused_hit(call, mine)
            if refusal is not None:
                return refusal
            result = await asyncio.shield(running.task)
            return _replayed(idempotency_key, running.fingerprint, fingerprint, result)
        started = self._ledger.started(idempotency_key)
        if started is not None:
            refusal = await self._refused_hit(call, started.belongs_to(call.tenant, ctx.session_id))
            if refusal is not None:
                return refusal
            return await self._cut_short(call, started)
        task = asyncio.create_task(self._run_and_record(call))
        running = _Running(fingerprint, task, call.tenant, ctx.session_id)
        self._inflight[idempotency_key] = running
        task.add_done_callback(lambda done: self._finished(idempotency_key, running, done))
        return await asyncio.shield(task)

    async def _refused_hit(self, call: _Call, mine: bool) -> ExecutionResult | None:
        """Why a call whose key is already known (a result, a run in progress, an intent) is
        not answered from it: the key is another session's or tenant's (a replayed or guessed
        key must not read someone else's result), or the caller's profile is not offered the
        tool (a hit must not bypass the catalog). None: answer from it."""
        if not mine:
            log.warning("refused %s: %s", call.key, KEY_OF_ANOTHER)
            if self._on_denied is not None:
                try:
                    await self._on_denied(
                        call.key, KEY_OF_ANOTHER, call.ctx.session_id, call.ctx.traceparent
                    )
                except Exception as exc:  # noqa: BLE001 - refused either way; never a crash
                    log.error("the refusal of %s could not be audited: %r", call.key, exc)
            return _error(f"idempotency key {call.key!r}: {KEY_OF_ANOTHER}; nothing ran")
        profile = call.ctx.agent_profile or "default"
        if not self._registry.offered_to(profile, call.tool_name):
            return _error(_not_offered(call.tool_name, profile))
        return None

    def _finished(self, key: str, running: _Running, task: asyncio.Task[ExecutionResult]) -> None:
        if self._inflight.get(key) is running:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every caller may have gone away

    async def _stored(self, key: str) -> LedgerEntry | None:
        entry = self._ledger.get(key)
        if entry is not None:
            # Durable now (a background retry of the ledger may have landed it): forget the
            # copy kept while it was not.
            self._unrecorded.pop(key, None)
            return entry
        unrecorded = self._unrecorded.get(key)
        if unrecorded is None:
            return None
        await self._record(key, unrecorded)
        return unrecorded.entry

    async def _cut_short(self, call: _Call, started: StartedEntry) -> ExecutionResult:
        """A key with an intent and no result: its run is still going (here or on another
        replica) until the intent's deadline, and was cut short after it."""
        if started.fingerprint != call.fingerprint:
            return _replayed(call.key, started.fingerprint, call.fingerprint, _error(""))
        seconds_left = started.deadline - self._wall_clock()
        if seconds_left > 0:
            raise RunInProgress(call.key, seconds_left)
        log.warning("the run of %s (%s) was cut short: outcome unknown", call.key, started.tool)
        unknown = call.entry(_error(OUTCOME_UNKNOWN))
        await self._record(
            call.key, _Unrecorded(unknown, call.ctx.session_id, call.ctx.traceparent)
        )
        return unknown.result

    async def _run_and_record(self, call: _Call) -> ExecutionResult:
        outcome = await self._timed(call)
        if outcome.final:
            entry = call.entry(outcome.result, outcome.ran)
            await self._record(
                call.key, _Unrecorded(entry, call.ctx.session_id, call.ctx.traceparent)
            )
        return outcome.result

    async def _abandon(self, key: str) -> None:
        try:
            await self._ledger.abandon(key)
        except Exception as exc:  # noqa: BLE001 - the intent then ages into "outcome unknown"
            log.warning("intent of %s could not be withdrawn: %r", key, exc)

    async def _record(self, key: str, pending: _Unrecorded) -> None:
        """Durable before returned: a caller that saw a result never sees the call run again."""
        try:
            await self._ledger.put(
                key, pending.entry, session_id=pending.session_id, trace=pending.trace
            )
        except Exception as exc:
            log.error("result of %s could not be recorded: %r", key, exc)
            self._unrecorded[key] = pending
            raise ResultNotRecorded(key, pending.entry.result, exc) from exc
        self._unrecorded.pop(key, None)

    async def _timed(self, call: _Call) -> _Outcome:
        started = self._clock()
        outcome = await self._decide_and_run(call)
        elapsed_ms = (self._clock() - started) * 1000.0
        return outcome._replace(
            result=outcome.result.model_copy(update={"duration_ms": elapsed_ms})
        )

    async def _decide_and_run(self, call: _Call) -> _Outcome:
        if call.parse_error:
            return _Outcome(_error(call.parse_error), final=True)
        tool = self._registry.get(call.tool_name)
        if tool is None:
            return _Outcome(_error(f"unknown tool {call.tool_name!r}"), final=True)
        profile = call.ctx.agent_profile or "default"
        if not self._registry.offered_to(profile, call.tool_name):
            # A model can only be offered its profile's catalog; a call outside it is refused
            # as if the tool did not exist for this agent.
            return _Outcome(_error(_not_offered(call.tool_name, profile)), final=True)
        approval = await self._check_approval(call)
        if approval.refusal is not None:
            return _Outcome(approval.refusal, final=False)
        arguments = call.arguments if approval.arguments is None else approval.arguments
        invalid = _invalid(tool, arguments)
        if invalid is not None:
            # Before policy: a REQUIRE_APPROVAL verdict on a call that can never run would ask
            # a person for nothing (and its corrected retry a second time). A call without an
            # approval id consults no approval service above, so nothing was asked; with one,
            # what is validated is what would run (a reviewer's modified arguments).
            return _Outcome(_noted(_error(invalid), approval), final=True)
        judged = _as_it_would_run(tool, arguments)
        try:
            verdict = await self._policy.evaluate(
                call.ctx,
                call.tool_name,
                judged,
                idempotency_key=call.key,
                approved=approval.outcome in _VERIFIED,
                **self._provenance_of(call, judged),
            )
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, nothing may run
            log.warning("policy evaluation failed for %s, failing closed: %r", call.tool_name, exc)
            unavailable = _error(POLICY_UNAVAILABLE).model_copy(
                update={"dependency_unavailable": True}
            )
            return _Outcome(_noted(unavailable, approval), final=False)
        refusal = _refusal(verdict, approval)
        if refusal is not None:
            return refusal
        tool_ctx = ToolContext(
            session_id=call.ctx.session_id,
            idempotency_key=call.key,
            approval_id=call.approval_id,
            traceparent=call.ctx.traceparent,
            agent_id=call.ctx.agent_id,
            tenant=call.ctx.tenant,
            agent_profile=call.ctx.agent_profile,
        )
        outcome = await self._run(tool, arguments, tool_ctx, call)
        outcome = outcome._replace(
            result=outcome.result.model_copy(update={"rule_id": verdict.rule_id})
        )
        if outcome.circuit_open and self._fallbacks is not None:
            # The fallback step: an alternative is run only as _fallback_for picked it, after
            # its own policy decision let it through.
            picked = await self._fallback_for(self._fallbacks, call, tool, arguments, outcome)
            if isinstance(picked, _Outcome):
                outcome = picked
            else:
                alt, alt_verdict = picked
                ran = await self._run(alt, arguments, tool_ctx, call)
                outcome = outcome if ran.circuit_open else _answered_by(ran, tool, alt, alt_verdict)
        return outcome._replace(result=_noted(outcome.result, approval))

    async def _fallback_for(
        self,
        fallbacks: Fallbacks,
        call: _Call,
        tool: Tool[Any],
        arguments: dict[str, Any],
        refused: _Outcome,
    ) -> tuple[Tool[Any], PolicyVerdict] | _Outcome:
        """The first alternative that may take the call, with the verdict that allowed it; or
        the answer instead: ``refused`` (today's) when none can, the alternative's refusal
        (denied, needs approval) when policy holds it. Each one is a call of its own: valid
        arguments for its schema, a fresh policy decision for its name with no approval
        carried over, and an audit record before it may run."""
        profile = call.ctx.agent_profile or "default"
        for alt in fallbacks.candidates(tool, self._registry, profile, self._resilience):
            if _invalid(alt, arguments) is not None:
                continue
            judged = _as_it_would_run(alt, arguments)
            try:
                verdict = await self._policy.evaluate(
                    call.ctx,
                    alt.name,
                    judged,
                    idempotency_key=call.key,
                    approved=False,  # an approval of the original does not cover it
                    **self._provenance_of(call, judged),
                )
            except Exception as exc:  # noqa: BLE001 - fails closed: nothing else runs
                log.warning("policy evaluation failed for fallback %s: %r", alt.name, exc)
                return refused
            event = FallbackEvent(
                tool.name,
                alt.name,
                refused.result.error,
                verdict.decision,
                call.key,
                call.ctx.session_id,
                call.ctx.traceparent,
            )
            try:
                await fallbacks.on_fallback(event)
            except Exception as exc:  # noqa: BLE001 - an unaudited fallback does not happen
                log.error("fallback %s -> %s not audited, not taken: %r", tool.name, alt.name, exc)
                return refused
            refusal = _refusal(verdict, ApprovalCheck(""))
            if refusal is not None:
                # Not final: the original may run once its breaker closes again.
                told_refusal = _told(refusal.result, tool.name, alt.name, ran=False)
                return _Outcome(told_refusal, final=False)
            return alt, verdict
        return refused

    def _provenance_of(
        self, call: _Call, arguments: dict[str, Any]
    ) -> dict[str, tuple[Finding, ...]]:
        """The findings to send with the decision; none (the port is called exactly as it
        always was) when this service tracks no provenance."""
        if self._provenance is None:
            return {}
        return {
            "provenance": self._provenance.findings(
                call.ctx.session_id, call.tenant, call.key, arguments, call.task_text
            )
        }

    async def _check_approval(self, call: _Call) -> ApprovalCheck:
        if not call.approval_id:
            return ApprovalCheck("")
        if self._approvals is None:
            refusal = ExecutionResult(
                status="error", error=NO_APPROVAL_SERVICE, approval_outcome="unavailable"
            )
            return ApprovalCheck("unavailable", refusal=refusal)
        return await check_approval(
            self._approvals,
            call.approval_id,
            call.tool_name,
            call.key,
            call.arguments,
            session_id=call.ctx.session_id,
            tenant=call.ctx.tenant,
        )

    async def _run(
        self, tool: Tool[Any], arguments: dict[str, Any], tool_ctx: ToolContext, call: _Call
    ) -> _Outcome:
        try:
            validated = tool.input_model.model_validate(arguments)
        except ValidationError as exc:  # checked before policy; kept as the run's own guard
            return _Outcome(_error(_invalid_message(tool, exc)), True)
        timeout_s = self._registry.timeout_of(tool)
        wrote_intent = tool.effects == "at_most_once" and bool(call.key)
        if wrote_intent:
            intent = StartedEntry(
                call.fingerprint,
                tool.name,
                self._instance,
                self._wall_clock() + timeout_s + self._intent_grace_s,
                call.tenant,
                call.ctx.session_id,
            )
            try:
                await self._ledger.begin(
                    call.key, intent, session_id=call.ctx.session_id, trace=call.ctx.traceparent
                )
            except Exception as exc:  # noqa: BLE001 - without its intent it must not run
                log.warning("intent of %s not recorded, not running it: %r", call.key, exc)
                unavailable = _error(INTENT_NOT_RECORDED).model_copy(
                    update={"dependency_unavailable": True}
                )
                return _Outcome(unavailable, final=False)

        async def attempt() -> Any:
            with calling(tool_ctx):
                return await _invoke(tool, validated)

        limit = tool.max_output_chars or self._max_output_chars
        try:
            value = await self._resilience.call(tool.name, resilience_of(tool), attempt, timeout_s)
        except CircuitOpen as exc:
            # Nothing ran: not final, so the same key may run once the dependency is back.
            if wrote_intent:
                await self._abandon(call.key)
            refused = _error(f"{exc}; {tool.name} did not run")
            return _Outcome(refused, final=False, circuit_open=True)
        except CallFailed as failed:
            if isinstance(failed.cause, ToolUnavailable):
                # The tool's own dependency is down and it says nothing ran (an MCP server
                # being reconnected): UNAVAILABLE to the caller, not final, intent withdrawn.
                if wrote_intent:
                    await self._abandon(call.key)
                down = _error(str(failed.cause)).model_copy(update={"dependency_unavailable": True})
                return _Outcome(down, final=False)
            log.info("tool %s failed: %r", tool.name, failed.cause)
            # An error quotes the tool (an MCP error body, a traceback): bounded like output.
            message, _ = cap(_failure(tool.name, failed), limit)
            return _Outcome(_error(message), final=True)
        output, truncated = cap(render(value), limit)
        return _Outcome(ExecutionResult(status="ok", output=output, truncated=truncated), True)


def _refusal(verdict: PolicyVerdict, approval: ApprovalCheck) -> _Outcome | None:
    """None (run) only for ALLOW, or REQUIRE_APPROVAL with a verified approval; deny always
    wins, and anything else (a verdict built without validation) fails closed."""
    rule = verdict.rule_id
    if verdict.decision == "allow":
        return None
    if verdict.decision == "require_approval" and approval.outcome in _VERIFIED:
        return None
    if verdict.decision == "require_approval" and not approval.outcome:
        message = f"needs approval (policy rule {rule}): {verdict.reason}"
        result = ExecutionResult(status="needs_approval", error=message, rule_id=rule)
        return _Outcome(result, final=False)
    if verdict.decision == "deny":
        message = f"denied by policy rule {rule}: {verdict.reason}"
        result = ExecutionResult(status="denied", error=message, rule_id=rule)
        return _Outcome(_noted(result, approval), final=True)
    log.error("policy returned an unknown decision %r; failing closed", verdict.decision)
    return _Outcome(_noted(_error(POLICY_UNAVAILABLE), approval), final=False)


# Approval outcomes that check_approval returns without a refusal.
_VERIFIED = frozenset({"approved", "modified"})


def _answered_by(
    ran: _Outcome, original: Tool[Any], alt: Tool[Any], verdict: PolicyVerdict
) -> _Outcome:
    """The alternative's outcome as the answer to the call: the model is told who answered,
    the ledger keeps the tool that ran."""
    result = ran.result.model_copy(update={"rule_id": verdict.rule_id})
    return ran._replace(result=_told(result, original.name, alt.name, ran=True), ran=alt.name)


def _told(
    result: ExecutionResult, original: str, alternative: str, *, ran: bool
) -> ExecutionResult:
    """The alternative's result, saying which tool answered and why (a line before the
    output, or before the error)."""
    notice = told(original, alternative, ran=ran)
    if result.status == "ok":
        return result.model_copy(update={"output": f"{notice}\n{result.output}"})
    return result.model_copy(update={"error": f"{notice}: {result.error}"})


def _not_offered(tool: str, profile: str) -> str:
    return f"tool {tool!r} is not offered to agent profile {profile!r}"


def _noted(result: ExecutionResult, approval: ApprovalCheck) -> ExecutionResult:
    return result.model_copy(update={"approval_outcome": approval.outcome})


def _replayed(key: str, stored: str, fingerprint: str, result: ExecutionResult) -> ExecutionResult:
    if stored != fingerprint:
        return _error(f"idempotency key {key!r} was used for a different call; nothing ran")
    return result.model_copy(update={"replayed": True})


def _invalid(tool: Tool[Any], arguments: dict[str, Any]) -> str | None:
    """Why the tool would refuse these arguments, or None when it would take them."""
    try:
        tool.input_model.model_validate(arguments)
    except ValidationError as exc:
        return _invalid_message(tool, exc)
    return None


def _invalid_message(tool: Tool[Any], exc: ValidationError) -> str:
    return f"invalid arguments for {tool.name}: {describe(exc)}"


def _as_it_would_run(tool: Tool[Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """What policy judges: the arguments with the tool's defaults filled in, as the tool would
    receive them — a rule on ``method`` must see the ``GET`` a model left out. Arguments the
    tool would refuse are judged as sent (the call then fails validation, whatever the verdict)."""
    try:
        validated = tool.input_model.model_validate(arguments)
    except ValidationError:
        return arguments
    dumped = validated.model_dump(mode="json")
    return dumped if isinstance(dumped, dict) else arguments


async def _invoke(tool: Tool[Any], validated: Any) -> Any:
    if inspect.iscoroutinefunction(tool.run):
        return await tool.run(validated)
    if tool.blocking is False:
        # Declared quick and bounded (the calculator): the hop to a thread (~0.1 ms) costs
        # more than the work, and the time-out could not stop the thread anyway.
        value = tool.run(validated)
    else:
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


def _failure(tool: str, failed: CallFailed) -> str:
    cause, attempts = failed.cause, failed.attempts
    if isinstance(cause, AttemptTimedOut):
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        return f"{tool} timed out after {cause.limit_s:g}s{tries}"
    after = f" after {attempts} attempts" if attempts > 1 else ""
    return f"{tool} failed{after}: {_explain(cause)}"


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
