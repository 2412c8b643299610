"""Reviewers' logins to the web inbox: a random session id in an HttpOnly, SameSite=Strict
cookie, and a CSRF token per login that every form posts back.

Kept in this process's memory: a restart (or another replica behind a load balancer without
sticky sessions) asks the reviewer to log in again, which costs a token paste and keeps no
secret on disk.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "keel_inbox"


@dataclass(frozen=True)
class Login:
    reviewer: str
    csrf: str
    expires: float

    def csrf_ok(self, presented: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), presented.encode())


class LoginSessions:
    def __init__(
        self,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = 10_000,
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._max = max_sessions
        self._logins: dict[str, Login] = {}

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def open(self, reviewer: str) -> tuple[str, Login]:
        """A new login: ``(session id for the cookie, login)``."""
        self._expire()
        if len(self._logins) >= self._max:  # a flood of logins: drop the oldest
            del self._logins[next(iter(self._logins))]
        session_id = secrets.token_urlsafe(32)
        login = Login(reviewer, secrets.token_urlsafe(32), self._clock() + self._ttl_s)
        self._logins[session_id] = login
        return session_id, login

    def get(self, session_id: str | None) -> Login | None:
        if not session_id:
            return None
        login = self._logins.get(session_id)
        if login is None:
            return None
        if login.expires <= self._clock():
            del self._logins[session_id]
            return None
        return login

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._logins.pop(session_id, None)

    def _expire(self) -> None:
        now = self._clock()
        for session_id in [s for s, login in self._logins.items() if login.expires <= now]:
            del self._logins[session_id]
