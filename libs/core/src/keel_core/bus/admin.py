"""Explicit, idempotent topic creation with the policies of the topic catalog."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from keel_contracts.errors import ConfigError
from keel_contracts.topics import TopicSpec, all_specs
from keel_core.bus.connect import client_options, start_with_retry
from keel_core.settings import KafkaSettings

log = logging.getLogger(__name__)

_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36


def new_topic(spec: TopicSpec, settings: KafkaSettings) -> NewTopic:
    """The topic as the cluster should hold it: the settings' replication factor and
    ``min.insync.replicas`` (a topic's own setting in the catalog wins), so the same catalog
    serves one dev broker and a replicated cluster. Without a min ISR setting the topic takes
    the cluster's default."""
    isr = {}
    if settings.min_insync_replicas is not None:
        isr["min.insync.replicas"] = str(settings.min_insync_replicas)
    return NewTopic(
        name=spec.name,
        num_partitions=settings.topic_partitions,
        replication_factor=settings.replication_factor,
        topic_configs={**isr, **spec.configs()},
    )


async def ensure_topics(settings: KafkaSettings, specs: Iterable[TopicSpec] | None = None) -> None:
    """Create every topic that is missing; existing topics are left as they are."""
    wanted = list(specs) if specs is not None else all_specs()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        **client_options(settings),
        client_id=f"{settings.client_id_prefix}-admin",
    )
    try:
        await start_with_retry(admin.start, settings)
        existing = set(await admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        if not missing:
            return
        response = await admin.create_topics([new_topic(s, settings) for s in missing])
        for topic, code, *rest in response.topic_errors:
            if code not in (_NO_ERROR, _TOPIC_ALREADY_EXISTS):
                message = rest[0] if rest else ""
                raise ConfigError(f"cannot create topic {topic}: error {code} {message}")
        log.info("created topics: %s", ", ".join(s.name for s in missing))
    finally:
        await admin.close()


async def wait_for_group(
    settings: KafkaSettings, group_id: str, members: int, timeout_s: float = 60.0
) -> None:
    """Until the consumer group is ``Stable`` with ``members`` members: a task submitted
    before a second replica has joined is moved to it by the rebalance that follows and runs
    again from its last durable checkpoint. Raises ``TimeoutError`` past ``timeout_s``."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        **client_options(settings),
        client_id=f"{settings.client_id_prefix}-admin",
    )
    try:
        await start_with_retry(admin.start, settings)
        async with asyncio.timeout(timeout_s):
            while True:
                [response] = await admin.describe_consumer_groups([group_id])
                _, _, state, _, _, joined, *_ = response.groups[0]
                if state == "Stable" and len(joined) == members:
                    return
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
