"""Errors of the tool gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel_contracts.errors import KeelError, Unavailable

if TYPE_CHECKING:
    from keel_tool_gateway.domain.models import ExecutionResult


class ToolGatewayError(KeelError):
    """Base of the errors the tool gateway raises on purpose."""


class DuplicateTool(ToolGatewayError):
    """Two tools registered under one name: a wiring bug, found at start-up."""


class ResultNotRecorded(ToolGatewayError, Unavailable):
    """The call ran but its result could not be written to the durable ledger.

    The result is withheld (a caller that saw a result must never see the call run again);
    this process keeps it and writes it on the next call with the same key, so a retry gets
    the stored result instead of a second run. Maps to gRPC ``UNAVAILABLE``.
    """

    def __init__(self, key: str, result: ExecutionResult, cause: BaseException) -> None:
        super().__init__(
            f"the call with idempotency key {key!r} ran but its result could not be recorded "
            f"({cause}); retry with the same key to get it"
        )
        self.key = key
        self.result = result


class RunInProgress(ToolGatewayError, Unavailable):
    """An earlier run of this key (on this or another replica) recorded its intent and has
    neither finished nor passed its deadline: it may still be running. Nothing runs now; a
    retry later gets its result, or, once the deadline has passed without one, the outcome
    unknown. Maps to gRPC ``UNAVAILABLE``."""

    def __init__(self, key: str, seconds_left: float) -> None:
        super().__init__(
            f"an earlier run of {key!r} is in progress or was cut short; retry in "
            f"{max(seconds_left, 0.0):.0f}s at most"
        )
        self.key = key
