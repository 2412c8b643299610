"""The key → partition mapping of every producer, remembered per key.

aiokafka's default partitioner is Kafka's (murmur2 of the key, positive, modulo the partition
count: the Java client's, so records of one key land where any other client would put them),
but its murmur2 is a pure-Python loop over the key's bytes, run again for every record: 2.6%
of the agent loop's samples under load, where a session's dozen records a step share one key.
The hash of a key never changes, so it is computed once per key (a bounded LRU: keys are
session ids and tenants, and a forgotten one is only hashed again).
"""

from __future__ import annotations

import functools
import random

from aiokafka.partitioner import murmur2

KEYS_REMEMBERED = 65_536


@functools.lru_cache(maxsize=KEYS_REMEMBERED)
def _positive_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


class RememberingPartitioner:
    """Drop-in for aiokafka's ``DefaultPartitioner``: same partition for every key."""

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        return all_partitions[_positive_hash(key) % len(all_partitions)]
