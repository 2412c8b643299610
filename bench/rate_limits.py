"""Rate-limit decision time in-process: µs per decision.

Three measures, each over many decisions (p50/p99 of batches of 1,000, per decision):

- ``bucket``: one ``RateLimiter.check`` on a hot key (the bucket exists; let through);
- ``refused``: the same on an empty bucket (a refusal with its retry-after);
- ``10k keys``: a key drawn from 10,000 tenants (bucket lookups over a large dict);
- ``interceptor``: ``RateLimitInterceptor.decide`` for a request with two rules in front of
  it (the key read from the request's fields, as the gRPC path does), without the network;
- ``fold``: debiting one published ``RateLimitSpent`` record of 100 keys (what each replica
  does per record it follows), per key.

Run: ``python bench/rate_limits.py [--iterations N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from keel.common.v1 import common_pb2
from keel.tool.v1 import tool_pb2
from keel_contracts.events import Envelope, RateLimitSpend, RateLimitSpent
from keel_core.grpc.ratelimit import RateLimitInterceptor
from keel_core.ratelimit import Limit, RateLimiter, RateLimitSettings, SpendSharer, rule

BATCH = 1000
HUGE = Limit(rate=1e12, burst=1e12)


def per_decision_us(run_batch: Callable[[], None], batches: int) -> tuple[float, float]:
    times: list[float] = []
    for _ in range(batches):
        started = time.perf_counter()
        run_batch()
        times.append((time.perf_counter() - started) / BATCH * 1e6)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def limiter_batches() -> list[tuple[str, Callable[[], None]]]:
    hot = RateLimiter(RateLimitSettings(limits={"calls": HUGE}))
    empty = RateLimiter(RateLimitSettings(limits={"calls": Limit(rate=1e-9, burst=1)}))
    empty.check("calls", "acme")
    keys = [f"tenant-{n}" for n in range(10_000)]
    many = RateLimiter(RateLimitSettings(limits={"calls": HUGE}))
    for key in keys:
        many.check("calls", key)
    position = [0]

    def hot_batch() -> None:
        for _ in range(BATCH):
            hot.check("calls", "acme")

    def refused_batch() -> None:
        for _ in range(BATCH):
            empty.check("calls", "acme")

    def many_batch() -> None:
        start = position[0]
        for n in range(start, start + BATCH):
            many.check("calls", keys[n % 10_000])
        position[0] = start + BATCH

    return [
        ("bucket (hot key, let through)", hot_batch),
        ("refused (empty bucket)", refused_batch),
        ("10k keys", many_batch),
    ]


def interceptor_batch() -> Callable[[], None]:
    interceptor = RateLimitInterceptor()
    settings = RateLimitSettings(
        limits={"tool": HUGE, "calls": HUGE},
        grpc=[
            rule("/keel.tool.v1.ToolGateway/Execute", "tool", key="call.name"),
            rule("/keel.tool.v1.ToolGateway/", "calls"),
        ],
    )
    interceptor.configure(RateLimiter(settings))
    request = tool_pb2.ExecuteRequest(
        context=common_pb2.RequestContext(tenant="acme"), call=common_pb2.ToolCall(name="search")
    )
    method = "/keel.tool.v1.ToolGateway/Execute"

    def batch() -> None:
        for _ in range(BATCH):
            interceptor.decide(method, request)

    return batch


def fold_batch() -> Callable[[], None]:
    folded = RateLimiter(RateLimitSettings(limits={"calls": HUGE}))
    sharer = SpendSharer(folded, None, None, "svc", "me")  # type: ignore[arg-type]
    spends = [RateLimitSpend(kind="calls", key=f"t{n}", tokens=1) for n in range(100)]
    record = Envelope.wrap(
        RateLimitSpent(service="svc", replica="other", at=0.0, spends=spends),
        source="svc",
        session_id="",
    )

    def batch() -> None:
        for _ in range(BATCH // 100):
            _apply_sync(sharer, record)

    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300, help="batches of 1,000")
    batches = parser.parse_args().iterations
    print(f"rate limits: µs per decision (p50 / p99 of {batches} batches of {BATCH})")
    for name, batch in (
        *limiter_batches(),
        ("interceptor decide, 2 rules", interceptor_batch()),
        ("fold a followed record, per key", fold_batch()),
    ):
        p50, p99 = per_decision_us(batch, batches)
        print(f"  {name:34s} {p50:6.2f} / {p99:6.2f} µs")


def _apply_sync(sharer: SpendSharer, record: Envelope) -> None:
    """``apply`` has no await inside: drive the coroutine to its end without a loop."""
    coroutine = sharer.apply(record)
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise RuntimeError("apply awaited something")


if __name__ == "__main__":
    main()
