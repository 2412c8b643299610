"""Consumes ``keel.approval.requests``: envelope → request (``RequestReader``), handed to the
intake use case."""

from __future__ import annotations

from keel_approval.usecases.intake import RequestIntake, RequestReader
from keel_contracts.events import Envelope


class RequestHandler:
    def __init__(self, intake: RequestIntake, *, reader: RequestReader | None = None) -> None:
        self._intake = intake
        self._reader = reader or RequestReader()

    async def on_request(self, envelope: Envelope) -> None:
        await self._intake.receive(self._reader.read(envelope))
