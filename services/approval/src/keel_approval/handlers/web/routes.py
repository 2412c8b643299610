"""The web inbox's pages and form posts (Starlette).

Reads come from the book; every decision goes through the ``Decider``, the same path as gRPC
``Resolve``: the same checks (reviewer, self-approval, quorum, modified arguments as a JSON
object), published to ``keel.approval.decisions`` and audited identically. Every page needs a
login (the reviewer tokens of gRPC; any name in development mode, when none are configured),
every POST a same-origin request and, once logged in, the login's CSRF token. A request whose
Host is not in the allow-list is refused (400) before any route (DNS rebinding: a page of
another site reaching 127.0.0.1 under its own name), and an address with too many failed
logins in a minute gets 429.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.models import Approval, Outcome
from keel_approval.handlers.auth import ReviewerAuth
from keel_approval.handlers.mapping import arguments_from_json
from keel_approval.handlers.web import views
from keel_approval.handlers.web.sessions import COOKIE, Login, LoginSessions
from keel_approval.handlers.web.throttle import LoginThrottle
from keel_approval.usecases.decisions import Decider
from keel_contracts.errors import (
    FailedPrecondition,
    InvalidArgument,
    KeelError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).parent

ACTIONS: dict[str, Outcome] = {"approve": "approve", "reject": "reject", "modify": "modify"}

# Keel's typed errors as HTTP statuses, the web's counterpart of the gRPC interceptor.
HTTP_STATUS: tuple[tuple[type[KeelError], int], ...] = (
    (InvalidArgument, 400),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (FailedPrecondition, 409),
    (Unavailable, 503),
)

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # "no-referrer" makes Origin "null"
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


def _now() -> datetime:
    return datetime.now(UTC)


def http_status(exc: KeelError) -> int:
    for kind, status in HTTP_STATUS:
        if isinstance(exc, kind):
            return status
    return 500


class SecurityHeaders:
    """Adds the headers above to every response: no script may run at all (the pages have
    none), so text that slipped through escaping still could not execute."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self._app(scope, receive, with_headers)


# (client address, reason) -> a record somewhere (the service's audit emitter).
InboxDenied = Callable[[str, str], Awaitable[None]]


class _AuditedHosts:
    """Reports the requests the Host allow-list refused (a DNS-rebinding page, a scan)."""

    def __init__(self, app: ASGIApp, denied: InboxDenied) -> None:
        self._app = app
        self._denied = denied

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        refused = False

        async def watching(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 400:
                refused = True
            await send(message)

        await self._app(scope, receive, watching)
        if refused:
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            client = scope.get("client") or ("?", 0)
            await self._denied(str(client[0]), f"Host {host[:200]!r} is not allowed")


class Inbox:
    def __init__(
        self,
        book: ApprovalBook,
        decider: Decider,
        auth: ReviewerAuth,
        sessions: LoginSessions,
        *,
        cookie_secure: bool = False,
        clock: Callable[[], datetime] = _now,
        allowed_hosts: Sequence[str] | None = None,
        throttle: LoginThrottle | None = None,
        on_denied: InboxDenied | None = None,
    ) -> None:
        """``allowed_hosts``: the Host names answered (None: any, for tests that build the
        app directly; the service passes its setting). ``throttle``: failed-login limits.
        ``on_denied(client, reason)``: told of every refusal (a foreign Host, a cross-site or
        failed or throttled login), which the service audits as ``security.denied``."""
        self._on_denied = on_denied
        self._allowed_hosts = list(allowed_hosts) if allowed_hosts is not None else None
        self._throttle = throttle or LoginThrottle(5)
        self._book = book
        self._decider = decider
        self._auth = auth
        self._sessions = sessions
        self._cookie_secure = cookie_secure
        self._clock = clock
        self._templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._templates.filters.update(
            pretty_json=views.pretty_json, when=views.when, snippet=views.snippet
        )

    def app(self) -> ASGIApp:
        routes = [
            Route("/", self.pending, methods=["GET"]),
            Route("/history", self.history, methods=["GET"]),
            Route("/approvals/{approval_id}", self.detail, methods=["GET"]),
            Route("/approvals/{approval_id}", self.decide, methods=["POST"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/healthz", self.health, methods=["GET"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        app: ASGIApp = Starlette(routes=routes)
        if self._allowed_hosts is not None:
            app = _AuditedHosts(
                TrustedHostMiddleware(app, allowed_hosts=self._allowed_hosts), self._denied
            )
        return SecurityHeaders(app)

    async def _denied(self, client: str, reason: str) -> None:
        if self._on_denied is None:
            return
        try:
            await self._on_denied(client, reason)
        except Exception as exc:  # noqa: BLE001 - the refusal stands whether or not it is recorded
            log.warning("inbox refusal not audited (%s): %r", reason, exc)

    # -- pages ---------------------------------------------------------------------------

    async def pending(self, request: Request) -> Response:
        login = self._login(request)
        if login is None:
            return self._to_login(request)
        notice = self._notice(request.query_params.get("decided", ""))
        return self._page(
            "pending.html", login, nav="pending", approvals=self._book.list(), notice=notice
        )

    async def history(self, request: Request) -> Response:
        login = self._login(request)
        if login is None:
            return self._to_login(request)
        decided = [a for a in self._book.list(include_resolved=True) if not a.pending]
        decided.sort(key=lambda a: (a.decided_at or a.created_at, a.id), reverse=True)
        return self._page("history.html", login, nav="history", approvals=decided)

    async def detail(self, request: Request) -> Response:
        login = self._login(request)
        if login is None:
            return self._to_login(request)
        try:
            approval = self._book.get(request.path_params["approval_id"])
        except NotFound as exc:
            return self._page("missing.html", login, status=404, error=str(exc))
        return self._detail(login, approval)

    async def decide(self, request: Request) -> Response:
        login = self._login(request)
        if login is None or not _same_origin(request):
            return PlainTextResponse("log in to decide", status_code=403)
        form = await request.form()
        if not login.csrf_ok(str(form.get("csrf", ""))):
            return PlainTextResponse("this form has expired: reload the page", status_code=403)
        approval_id = request.path_params["approval_id"]
        comment = str(form.get("comment", "")).strip()
        arguments = str(form.get("arguments", ""))
        try:
            approval = self._book.get(approval_id)
            outcome = _action(str(form.get("action", "")))
            modified = _modified_arguments(outcome, arguments, approval)
            await self._decider.resolve(approval_id, outcome, login.reviewer, comment, modified)
        except NotFound as exc:
            return self._page("missing.html", login, status=404, error=str(exc))
        except KeelError as exc:
            return self._detail(
                login,
                self._book.get(approval_id),
                error=str(exc),
                status=http_status(exc),
                comment=comment,
                arguments=arguments,
            )
        return RedirectResponse(f"/?decided={quote(approval_id, safe='')}", status_code=303)

    # -- logging in and out ------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        if self._login(request) is not None:
            return RedirectResponse("/", status_code=303)
        return self._page("login.html", None, next=_safe_next(request.query_params.get("next")))

    async def login(self, request: Request) -> Response:
        address = request.client.host if request.client else "?"
        if not _same_origin(request):
            await self._denied(address, "cross-site login refused")
            return PlainTextResponse("cross-site login refused", status_code=403)
        if self._throttle.blocked(address):
            await self._denied(address, "login throttled: too many failed logins")
            return PlainTextResponse(
                "too many failed logins; try again in a minute", status_code=429
            )
        form = await request.form()
        next_path = _safe_next(str(form.get("next", "")))
        if self._auth.enabled:
            token = str(form.get("token", "")).strip()
            reviewer = self._auth.name_of(token.encode()) if token else ""
            error = "That token names no reviewer."
        else:
            reviewer = str(form.get("reviewer", "")).strip()
            error = "Say who you are."
        if not reviewer:
            if self._auth.enabled:
                self._throttle.failed(address)
                await self._denied(address, "failed login: the token names no reviewer")
            return self._page("login.html", None, status=401, next=next_path, error=error)
        session_id, _ = self._sessions.open(reviewer)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=int(self._sessions.ttl_s),
            path="/",
            httponly=True,
            samesite="strict",
            secure=self._cookie_secure,
        )
        return response

    async def logout(self, request: Request) -> Response:
        login = self._login(request)
        if login is not None and _same_origin(request):
            form = await request.form()
            if login.csrf_ok(str(form.get("csrf", ""))):
                self._sessions.close(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    # -- helpers -------------------------------------------------------------------------

    def _login(self, request: Request) -> Login | None:
        return self._sessions.get(request.cookies.get(COOKIE))

    def _to_login(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    def _notice(self, approval_id: str) -> str:
        """After a decision, one line naming it (only for a request that really is decided)."""
        if not approval_id:
            return ""
        try:
            approval = self._book.get(approval_id)
        except NotFound:
            return ""
        if approval.pending:
            needed = approval.required_approvals - len(approval.approved_by)
            return f"Your approval of {approval.tool_name} is recorded; {needed} more needed."
        label = views.STATUS_LABELS[approval.status]
        return f"{label}: {approval.tool_name} ({approval.id}). It is in the history."

    def _detail(
        self,
        login: Login,
        approval: Approval,
        *,
        error: str = "",
        status: int = 200,
        comment: str = "",
        arguments: str | None = None,
    ) -> Response:
        return self._page(
            "detail.html",
            login,
            status=status,
            nav="pending" if approval.pending else "history",
            a=approval,
            error=error,
            comment=comment,
            arguments=views.pretty_json(approval.arguments) if arguments is None else arguments,
            can_modify=approval.required_approvals == 1,
            is_own=login.reviewer == approval.agent_id,
            voted=login.reviewer in approval.approved_by,
        )

    def _page(
        self, name: str, login: Login | None, *, status: int = 200, **context: Any
    ) -> Response:
        now = self._clock()
        html = self._templates.get_template(name).render(
            login=login,
            dev_mode=not self._auth.enabled,
            pending_count=self._book.pending_count,
            now=now,
            relative=lambda moment: views.relative(moment, now),
            soon=lambda moment: views.overdue_soon(moment, now),
            labels=views.STATUS_LABELS,
            **context,
        )
        return HTMLResponse(html, status_code=status)


def _action(value: str) -> Outcome:
    try:
        return ACTIONS[value]
    except KeyError:
        raise InvalidArgument(f"unknown action {value!r}: approve, reject or modify") from None


def _modified_arguments(outcome: Outcome, text: str, approval: Approval) -> object:
    """The reviewer's arguments for ``modify`` (checked by the book like gRPC's); for approve,
    arguments edited in the form are refused rather than silently dropped."""
    if outcome == "modify":
        return arguments_from_json(text)
    if outcome == "approve" and text.strip():
        try:
            edited = json.loads(text)
        except json.JSONDecodeError:
            edited = None
        if edited != approval.arguments:
            raise InvalidArgument(
                "you changed the arguments: choose 'Modify and approve' to run the call with "
                "them, or reload the page to approve the original call"
            )
    return None


def _safe_next(value: str | None) -> str:
    """Only a path on this site: never an open redirect to another one."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _same_origin(request: Request) -> bool:
    """A browser names the page a POST came from in ``Origin``; it must be this site. (No
    Origin at all is a non-browser client, which has no cookie to ride on.)"""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc == host
