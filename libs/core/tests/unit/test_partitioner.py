"""The remembering partitioner puts every key where Kafka's own partitioner does."""

from __future__ import annotations

import random
import uuid

from aiokafka.partitioner import DefaultPartitioner

from keel_core.bus.partitioner import RememberingPartitioner, _positive_hash


def test_every_key_lands_on_the_partition_kafkas_partitioner_picks() -> None:
    ours, kafkas = RememberingPartitioner(), DefaultPartitioner()
    rng = random.Random(7)
    keys = [str(uuid.UUID(int=rng.getrandbits(128))).encode() for _ in range(300)]
    keys += [b"", b"a", b"tenant-a", bytes(range(256))]
    for partitions in (1, 3, 6, 12, 50):
        all_partitions = list(range(partitions))
        for key in keys:
            # Twice: the second answer comes from the memo.
            for _ in range(2):
                assert ours(key, all_partitions, all_partitions) == kafkas(
                    key, all_partitions, all_partitions
                )


def test_a_keys_hash_is_computed_once() -> None:
    _positive_hash.cache_clear()
    partitioner, key = RememberingPartitioner(), b"session-1"
    for _ in range(5):
        partitioner(key, [0, 1, 2], [0, 1, 2])
    info = _positive_hash.cache_info()
    assert (info.misses, info.hits) == (1, 4)


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    partitioner = RememberingPartitioner()
    assert {partitioner(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
    assert {partitioner(None, [0, 1, 2], []) for _ in range(50)} <= {0, 1, 2}
