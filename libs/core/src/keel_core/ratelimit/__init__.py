"""Rate limits: token buckets per key (tenant, tool, model), configured per service and
shared across replicas through ``keel.ratelimit.spend`` (docs/rate-limits.md, ADR 0012)."""

from keel_core.ratelimit.bucket import TokenBucket
from keel_core.ratelimit.config import TENANT, Limit, MethodLimit, RateLimitSettings, rule
from keel_core.ratelimit.limiter import RateLimiter, Refusal
from keel_core.ratelimit.shared import SpendSharer, share
from keel_core.ratelimit.tasks import TASKS_KIND, admit_task, limit_tasks

__all__ = [
    "TASKS_KIND",
    "TENANT",
    "Limit",
    "MethodLimit",
    "RateLimitSettings",
    "RateLimiter",
    "Refusal",
    "SpendSharer",
    "TokenBucket",
    "admit_task",
    "limit_tasks",
    "rule",
    "share",
]
