"""Hot reload: poll the policy files and swap in a new policy when their contents change.

A change that fails validation keeps the policy in force; the error is logged, counted and
audited (``policy.reload_failed``), and the same broken contents are not retried until they
change again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from keel_core.audit import AuditEmitter
from keel_policy.adapters.policy_file import fingerprint, load_policy
from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.holder import PolicyHolder
from keel_policy.domain.models import PolicyBundle
from keel_policy.errors import PolicyFileError
from keel_policy.metrics import PolicyMetrics

log = logging.getLogger(__name__)

ACTOR = "policy"


EngineFactory = Callable[[PolicyBundle], PolicyEngine]


def load_holder(path: Path, build: EngineFactory = PolicyEngine) -> PolicyHolder:
    """The policy at start-up; a bad file raises (the service exits 2 with the message).
    ``build`` makes the engine (the service's passes its live lists, state and clock)."""
    engine = build(load_policy(path))
    return PolicyHolder(engine, fingerprint(path, engine.files))


class PolicyReloader:
    def __init__(
        self,
        path: Path,
        holder: PolicyHolder,
        audit: AuditEmitter,
        metrics: PolicyMetrics,
        interval_s: float,
        build: EngineFactory = PolicyEngine,
    ) -> None:
        self._path = path
        self._holder = holder
        self._audit = audit
        self._metrics = metrics
        self._interval_s = interval_s
        self._build = build
        self._seen = holder.fingerprint
        self._task: asyncio.Task[None] | None = None
        self._observe(holder.engine)

    async def start(self) -> None:
        """Audit the policy in force, then poll (unless the interval is 0)."""
        await self._audit.record(
            "policy.loaded",
            actor=ACTOR,
            subject=str(self._path),
            details=self._summary(self._holder.engine, self._holder.fingerprint),
        )
        if self._interval_s > 0:
            self._task = asyncio.create_task(self._poll(), name="policy-reload")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> str:
        """Reload if the files changed: "unchanged", "reloaded" or "failed"."""
        # The policy files and the list and variable files the policy in force read.
        watched = self._holder.engine.files
        current = await asyncio.to_thread(fingerprint, self._path, watched)
        if current == self._seen:
            return "unchanged"
        self._seen = current
        try:
            bundle = await asyncio.to_thread(load_policy, self._path)
            engine = self._build(bundle)
        except PolicyFileError as exc:
            log.error("policy reload failed, keeping the previous policy: %s", exc)
            self._metrics.reloads.labels("error").inc()
            await self._audit.record(
                "policy.reload_failed",
                actor=ACTOR,
                subject=str(self._path),
                details={"error": str(exc), "kept_fingerprint": self._holder.fingerprint},
            )
            return "failed"
        # Fingerprinted over the files the new policy reads (a list file added or dropped).
        current = await asyncio.to_thread(fingerprint, self._path, engine.files)
        self._seen = current
        self._holder.swap(engine, current)
        self._observe(engine)
        self._metrics.reloads.labels("ok").inc()
        log.info("policy reloaded: %d sets, %d rules", len(engine.set_names), engine.rule_count)
        await self._audit.record(
            "policy.reloaded",
            actor=ACTOR,
            subject=str(self._path),
            details=self._summary(engine, current),
        )
        return "reloaded"

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check()
            except Exception:
                # A failure to read or audit must not end reloading for good.
                log.exception("policy reload check failed")

    def _observe(self, engine: PolicyEngine) -> None:
        self._metrics.rules.set(engine.rule_count)
        self._metrics.sets.set(len(engine.set_names))

    @staticmethod
    def _summary(engine: PolicyEngine, seen: str) -> dict[str, object]:
        return {"sets": list(engine.set_names), "rules": engine.rule_count, "fingerprint": seen}
