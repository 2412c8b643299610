"""The A2A (Agent2Agent, protocol 0.3) endpoint: the agent card at
``/.well-known/agent-card.json`` and JSON-RPC 2.0 ``message/send``, ``message/stream`` (SSE) and
``tasks/get`` at ``/a2a``, written from the spec over Starlette (the task of an A2A caller is a
Keel session: its id is the session id).

``message/send`` runs the message's text as a goal over the agent loop's front door as the
caller and answers with the finished task; the skill (agent profile) comes from the message's
or the request's ``metadata.skill``. A message with a data part ``{"plan": {...}}``, or with
the skill ``run_plan`` and the plan as YAML/JSON text, runs a multi-agent plan instead (its
id is the task id); a plan that cannot run is ``-32602`` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from keel_agents_server.auth import Authenticator
from keel_agents_server.front_door import AgentFrontDoor, OnEvent
from keel_agents_server.plans import plan_json
from keel_contracts.errors import InvalidArgument, KeelError, NotFound, Unauthenticated
from keel_contracts.sessions import SessionEvent, SessionView

PROTOCOL_VERSION = "0.3.0"
CARD_PATH = "/.well-known/agent-card.json"
RPC_PATH = "/a2a"

# JSON-RPC 2.0 and A2A error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TASK_NOT_FOUND = -32001
# The skill that runs a plan rather than a goal (the card lists it beside the profiles).
PLAN_SKILL = "run_plan"

STATES = {
    "pending": "submitted",
    "running": "working",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "canceled",
}


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Work:
    """What a message asks for: a goal for an agent profile (``skill``), or a plan (JSON)."""

    goal: str
    skill: str
    context_id: str
    plan: str | None = None


def agent_card(url: str, profiles: list[str]) -> dict[str, Any]:
    return {
        "protocolVersion": PROTOCOL_VERSION,
        "name": "Keel agents",
        "description": "Keel's agents: tool use under policy, approvals, audit and budgets.",
        "url": url.rstrip("/") + RPC_PATH,
        "preferredTransport": "JSONRPC",
        "version": "0.1.0",
        "capabilities": {"streaming": True, "pushNotifications": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {
                "id": profile,
                "name": profile,
                "description": f"Run a goal with the {profile!r} agent profile.",
                "tags": ["keel", "agent"],
            }
            for profile in profiles
        ]
        + [
            {
                "id": PLAN_SKILL,
                "name": PLAN_SKILL,
                "description": 'Run a multi-agent plan: a data part {"plan": {goal, nodes}}, '
                "or its YAML/JSON as the text with metadata.skill run_plan. Answers with "
                "the plan's output.",
                "tags": ["keel", "plan"],
                "inputModes": ["application/json", "text/plain"],
            }
        ],
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "security": [{"bearer": []}],
    }


def task_json(view: SessionView, context_id: str = "") -> dict[str, Any]:
    state = STATES.get(view.status, "unknown")
    status: dict[str, Any] = {"state": state}
    task: dict[str, Any] = {
        "kind": "task",
        "id": view.session_id,
        "contextId": context_id or view.session_id,
        "status": status,
    }
    text = view.answer or view.error
    if text:
        status["message"] = _agent_message(view.session_id, text)
    if view.answer:
        task["artifacts"] = [
            {
                "artifactId": "answer",
                "name": "answer",
                "parts": [{"kind": "text", "text": view.answer}],
            }
        ]
    return task


class A2AEndpoint:
    def __init__(
        self,
        front_door: AgentFrontDoor,
        authenticator: Authenticator,
        profiles: list[str],
        public_url: str,
    ) -> None:
        self._front_door = front_door
        self._auth = authenticator
        self._profiles = profiles
        self._card = agent_card(public_url, profiles)

    def routes(self) -> list[Route]:
        return [
            Route(CARD_PATH, self.card, methods=["GET"]),
            Route(RPC_PATH, self.rpc, methods=["POST"]),
        ]

    async def card(self, request: Request) -> JSONResponse:
        return JSONResponse(self._card)

    async def rpc(self, request: Request) -> Response:
        try:
            caller = self._auth.from_headers(request.headers)
        except Unauthenticated as exc:  # the guard answered 401 already; kept for direct use
            return JSONResponse({"error": str(exc)}, status_code=401)
        request_id: Any = None
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict) or body.get("jsonrpc") != "2.0":
                raise RpcError(INVALID_REQUEST, "not a JSON-RPC 2.0 request")
            request_id = body.get("id")
            params = body.get("params") or {}
            if not isinstance(params, dict):
                raise RpcError(INVALID_PARAMS, "params must be an object")
            method = str(body.get("method"))
            if method == "message/stream":
                frames = self._stream(request_id, caller.token, self._work(params))
                return StreamingResponse(_sse(frames), media_type="text/event-stream")
            result = await self._dispatch(method, params, caller.token)
        except json.JSONDecodeError:
            return _error(None, PARSE_ERROR, "the body is not JSON")
        except RpcError as exc:
            return _error(request_id, exc.code, str(exc))
        except NotFound as exc:
            return _error(request_id, TASK_NOT_FOUND, str(exc))
        except KeelError as exc:
            return _error(request_id, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result})

    async def _dispatch(self, method: str, params: dict[str, Any], token: str) -> dict[str, Any]:
        if method == "message/send":
            return await self._send(params, token)
        if method == "tasks/get":
            task_id = params.get("id")
            if not isinstance(task_id, str) or not task_id:
                raise RpcError(INVALID_PARAMS, "tasks/get needs params.id")
            return task_json(await self._get(token, task_id))
        raise RpcError(METHOD_NOT_FOUND, f"method {method!r} is not supported")

    def _work(self, params: dict[str, Any]) -> Work:
        """The goal (the message's text parts), the skill (profile) and the context id; or
        the plan of a data part / of the ``run_plan`` skill's text."""
        message = params.get("message")
        if not isinstance(message, dict):
            raise RpcError(INVALID_PARAMS, "the request needs params.message")
        parts = [p for p in message.get("parts") or [] if isinstance(p, dict)]
        goal = "\n".join(str(p.get("text", "")) for p in parts if p.get("kind") == "text").strip()
        skill = _skill(message, params)
        context_id = str(message.get("contextId") or "")
        data = [
            p["data"] for p in parts if p.get("kind") == "data" and isinstance(p.get("data"), dict)
        ]
        planned = next((d for d in data if "plan" in d), None)
        if planned is not None or skill == PLAN_SKILL:
            try:
                plan = plan_json(planned if planned is not None else goal, self._profiles)
            except InvalidArgument as exc:
                raise RpcError(INVALID_PARAMS, str(exc)) from exc
            return Work(goal, PLAN_SKILL, context_id, plan)
        if not goal:
            raise RpcError(INVALID_PARAMS, "the message has no text part")
        if skill and skill not in self._profiles:
            raise RpcError(INVALID_PARAMS, f"unknown skill {skill!r}")
        return Work(goal, skill, context_id)

    async def _run(self, token: str, work: Work, on_event: OnEvent | None = None) -> SessionView:
        """A goal's session or a plan, to its end; a plan the agent loop refuses as invalid
        is the caller's to fix (``-32602`` with the reason)."""
        if work.plan is None:
            return await self._front_door.run(token, work.goal, work.skill, on_event)
        try:
            return await self._front_door.run_plan(token, work.plan)
        except InvalidArgument as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from exc

    async def _get(self, token: str, task_id: str) -> SessionView:
        """A task is a session or a plan: a session first, then a plan of that id."""
        try:
            return await self._front_door.get(token, task_id)
        except NotFound as missing:
            try:
                return await self._front_door.get_plan(token, task_id)
            except NotFound:
                raise missing from None

    async def _send(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        work = self._work(params)
        return task_json(await self._run(token, work), work.context_id)

    async def _stream(
        self, request_id: Any, token: str, work: Work
    ) -> AsyncIterator[dict[str, Any]]:
        """The task when its first event arrives, a ``working`` status update per session
        event, then the answer artifact and the final status (``final: true``)."""
        frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        context_id = work.context_id

        def frame(result: dict[str, Any]) -> dict[str, Any]:
            return {"jsonrpc": "2.0", "id": request_id, "result": result}

        async def on_event(event: SessionEvent) -> None:
            task_id = event.session_id
            if not started:
                started.append(task_id)
                submitted = {"state": "submitted"}
                await frames.put(frame(_task(task_id, context_id or task_id, submitted)))
            note = f"{event.type} (iteration {event.iteration})"
            status = {"state": "working", "message": _agent_message(task_id, note)}
            await frames.put(frame(_update(task_id, context_id or task_id, status, final=False)))

        async def run() -> None:
            try:
                view = await self._run(token, work, on_event)
                done = task_json(view, context_id)
                if not started:  # a plan sends no session events: the task comes first
                    submitted = {"state": "submitted"}
                    await frames.put(frame(_task(done["id"], done["contextId"], submitted)))
                for artifact in done.get("artifacts", []):
                    update = {"kind": "artifact-update", "taskId": done["id"]}
                    update |= {"contextId": done["contextId"], "artifact": artifact}
                    await frames.put(frame(update))
                final = _update(done["id"], done["contextId"], done["status"], final=True)
                await frames.put(frame(final))
            except RpcError as exc:
                error = {"code": exc.code, "message": str(exc)}
                await frames.put({"jsonrpc": "2.0", "id": request_id, "error": error})
            except KeelError as exc:
                code = TASK_NOT_FOUND if isinstance(exc, NotFound) else INTERNAL_ERROR
                error = {"code": code, "message": f"{type(exc).__name__}: {exc}"}
                await frames.put({"jsonrpc": "2.0", "id": request_id, "error": error})
            finally:
                await frames.put(None)

        started: list[str] = []
        runner = asyncio.create_task(run())
        try:
            while (item := await frames.get()) is not None:
                yield item
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


async def _sse(frames: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    async for item in frames:
        yield f"data: {json.dumps(item)}\n\n"


def _task(task_id: str, context_id: str, status: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "task", "id": task_id, "contextId": context_id, "status": status}


def _update(
    task_id: str, context_id: str, status: dict[str, Any], *, final: bool
) -> dict[str, Any]:
    return {
        "kind": "status-update",
        "taskId": task_id,
        "contextId": context_id,
        "status": status,
        "final": final,
    }


def _agent_message(task_id: str, text: str) -> dict[str, Any]:
    return {
        "kind": "message",
        "role": "agent",
        "messageId": uuid.uuid4().hex,
        "taskId": task_id,
        "parts": [{"kind": "text", "text": text}],
    }


def _skill(message: dict[str, Any], params: dict[str, Any]) -> str:
    for holder in (message, params):
        metadata = holder.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("skill"), str):
            return str(metadata["skill"])
    return ""


def _error(request_id: Any, code: int, message: str) -> JSONResponse:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return JSONResponse(body)
