"""Hot reload of the guards file, like the policy's: poll it and swap in the new engine when
its contents change. A change that does not validate keeps the guards in force; the error is
logged and audited (``guards.reload_failed``) and the same broken contents are not retried
until they change again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from keel_agent_loop.errors import GuardsFileError
from keel_agent_loop.guards.loader import fingerprint, load_guards
from keel_agent_loop.guards.service import ACTOR, Auditor, GuardHolder

log = logging.getLogger(__name__)


def load_holder(path: Path) -> GuardHolder:
    """The guards at start-up; a bad file raises (the service exits with the message)."""
    seen = fingerprint(path)
    return GuardHolder(load_guards(path), seen)


class GuardsReloader:
    def __init__(self, path: Path, holder: GuardHolder, audit: Auditor, interval_s: float) -> None:
        self._path = path
        self._holder = holder
        self._audit = audit
        self._interval_s = interval_s
        self._seen = holder.fingerprint
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Audit the guards in force, then poll (unless the interval is 0)."""
        await self._audit.record(
            "guards.loaded", actor=ACTOR, subject=str(self._path), details=self._summary()
        )
        if self._interval_s > 0:
            self._task = asyncio.create_task(self._poll(), name="guards-reload")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> str:
        """Reload if the file changed: "unchanged", "reloaded" or "failed"."""
        current = await asyncio.to_thread(fingerprint, self._path)
        if current == self._seen:
            return "unchanged"
        self._seen = current
        try:
            engine = await asyncio.to_thread(load_guards, self._path)
        except GuardsFileError as exc:
            log.error("guards reload failed, keeping the previous guards: %s", exc)
            await self._audit.record(
                "guards.reload_failed",
                actor=ACTOR,
                subject=str(self._path),
                details={"error": str(exc), "kept_fingerprint": self._holder.fingerprint},
            )
            return "failed"
        self._holder.swap(engine, current)
        log.info("guards reloaded: %d rules", engine.rule_count)
        await self._audit.record(
            "guards.reloaded", actor=ACTOR, subject=str(self._path), details=self._summary()
        )
        return "reloaded"

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check()
            except Exception:
                # A failure to read or audit must not end reloading for good.
                log.exception("guards reload check failed")

    def _summary(self) -> dict[str, object]:
        return {"rules": self._holder.engine.rule_count, "fingerprint": self._holder.fingerprint}
