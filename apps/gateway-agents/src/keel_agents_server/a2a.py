"""The A2A (Agent2Agent, protocol 0.3) endpoint: the agent card at
``/.well-known/agent-card.json`` and JSON-RPC 2.0 ``message/send`` and ``tasks/get`` at
``/a2a``, written from the spec over Starlette (the task of an A2A caller is a Keel session:
its id is the session id).

``message/send`` runs the message's text as a goal over the agent loop's front door as the
caller and answers with the finished task; the skill (agent profile) comes from the message's
or the request's ``metadata.skill``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from keel_agents_server.auth import Authenticator
from keel_agents_server.front_door import AgentFrontDoor
from keel_contracts.errors import KeelError, NotFound, Unauthenticated
from keel_contracts.sessions import SessionView

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


def agent_card(url: str, profiles: list[str]) -> dict[str, Any]:
    return {
        "protocolVersion": PROTOCOL_VERSION,
        "name": "Keel agents",
        "description": "Keel's agents: tool use under policy, approvals, audit and budgets.",
        "url": url.rstrip("/") + RPC_PATH,
        "preferredTransport": "JSONRPC",
        "version": "0.1.0",
        "capabilities": {"streaming": False, "pushNotifications": False},
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
        status["message"] = {
            "kind": "message",
            "role": "agent",
            "messageId": uuid.uuid4().hex,
            "taskId": view.session_id,
            "parts": [{"kind": "text", "text": text}],
        }
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

    async def rpc(self, request: Request) -> JSONResponse:
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
            result = await self._dispatch(str(body.get("method")), params, caller.token)
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
            return task_json(await self._front_door.get(token, task_id))
        raise RpcError(METHOD_NOT_FOUND, f"method {method!r} is not supported")

    async def _send(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        message = params.get("message")
        if not isinstance(message, dict):
            raise RpcError(INVALID_PARAMS, "message/send needs params.message")
        parts = message.get("parts") or []
        goal = "\n".join(
            str(p.get("text", "")) for p in parts if isinstance(p, dict) and p.get("kind") == "text"
        ).strip()
        if not goal:
            raise RpcError(INVALID_PARAMS, "the message has no text part")
        skill = _skill(message, params)
        if skill and skill not in self._profiles:
            raise RpcError(INVALID_PARAMS, f"unknown skill {skill!r}")
        view = await self._front_door.run(token, goal, skill)
        return task_json(view, str(message.get("contextId") or ""))


def _skill(message: dict[str, Any], params: dict[str, Any]) -> str:
    for holder in (message, params):
        metadata = holder.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("skill"), str):
            return str(metadata["skill"])
    return ""


def _error(request_id: Any, code: int, message: str) -> JSONResponse:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return JSONResponse(body)
