"""The limit on tasks taken from ``keel.tasks``: a delay, never a refusal.

A task record that finds its tenant's bucket empty waits (in flight, uncommitted) until the
bucket has refilled, then runs. The consumer handles different keys (sessions) concurrently,
so a waiting task holds only its own session's lane: other tenants' tasks go on, and a tenant's
waiting tasks take the tokens as they refill. The limit throttles a tenant's consumption
instead of failing or dead-lettering work someone already accepted, and nothing is lost (a
crash while waiting redelivers the record, as for any unfinished task). What it costs: each
waiting task holds one of the consumer's in-flight slots (``max_in_flight``, 256), so a flood
from one tenant can fill them. Records other than submitted tasks (decisions, cancels) pass at
once: they continue work already admitted. A redelivered task is counted again (over, never
under).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

from keel_contracts.events import Envelope, TaskSubmitted
from keel_core.ratelimit.limiter import RateLimiter

log = logging.getLogger(__name__)

TASKS_KIND = "tasks"
# The longest one wait lasts before the bucket is asked again (a debit from another replica
# can have moved the refill further out meanwhile).
MAX_WAIT_S = 5.0


Sleep = Callable[[float], Awaitable[None]]


async def admit_task(
    limiter: RateLimiter, envelope: Envelope, sleep: Sleep = asyncio.sleep
) -> float:
    """Wait until the task's tenant may start another task; answers the seconds waited
    (``sleep`` is the delay itself, injected so a test can drive a fake clock with it)."""
    if envelope.type != TaskSubmitted.event_type:
        return 0.0
    tenant = envelope.data.get("tenant")
    key = tenant if isinstance(tenant, str) and tenant else "default"
    waited = 0.0
    while (refusal := limiter.check(TASKS_KIND, key)) is not None:
        if math.isinf(refusal.retry_after_s):
            log.warning("task %s: %s; running it unlimited", envelope.session_id, refusal.message())
            return waited
        wait = min(refusal.retry_after_s, MAX_WAIT_S)
        log.info("task %s of %s delayed %.2f s by its rate limit", envelope.session_id, key, wait)
        await sleep(wait)
        waited += wait
    return waited


def limit_tasks(
    limiter: RateLimiter, handler: Callable[[Envelope], Awaitable[None]]
) -> Callable[[Envelope], Awaitable[None]]:
    """``handler`` behind the ``tasks`` limit; ``handler`` itself when no such limit is set."""
    if not any(kind.split(":")[0] == TASKS_KIND for kind in limiter.settings.limits):
        return handler

    async def limited(envelope: Envelope) -> None:
        await admit_task(limiter, envelope)
        await handler(envelope)

    return limited
