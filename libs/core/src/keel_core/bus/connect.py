"""Start a Kafka client, retrying until the broker answers or the configured time runs out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaConnectionError, KafkaError

from keel_contracts.errors import ConfigError
from keel_core.settings import KafkaSettings


async def start_with_retry(start: Callable[[], Awaitable[None]], settings: KafkaSettings) -> None:
    """A broker that never answers becomes one clear ``ConfigError``, not a traceback."""
    deadline = time.monotonic() + settings.connect_timeout_s
    delay = 0.2
    while True:
        try:
            await start()
            return
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if time.monotonic() + delay > deadline:
                raise ConfigError(
                    f"cannot reach Kafka at {settings.bootstrap} after "
                    f"{settings.connect_timeout_s:.0f}s ({type(exc).__name__}: {exc}); "
                    "start it with `make kafka-up` or set KEEL_KAFKA_BOOTSTRAP"
                ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
