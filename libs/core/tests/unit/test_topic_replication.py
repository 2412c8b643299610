"""Topics follow the cluster they are created on: replication factor and min ISR come from the
settings, so the same catalog serves the single dev broker and the 3-node cluster."""

from __future__ import annotations

import pytest

from keel_contracts.topics import TopicSpec
from keel_core.bus.admin import new_topic
from keel_core.settings import KafkaSettings


def test_a_cluster_gets_three_copies_and_two_in_sync() -> None:
    settings = KafkaSettings(replication_factor=3, min_insync_replicas=2)

    topic = new_topic(TopicSpec("keel.example", retention_ms=1000), settings)

    assert topic.replication_factor == 3
    assert topic.topic_configs["min.insync.replicas"] == "2"
    assert topic.topic_configs["retention.ms"] == "1000"


def test_without_a_min_isr_setting_the_cluster_default_holds() -> None:
    topic = new_topic(TopicSpec("keel.example"), KafkaSettings())

    assert topic.replication_factor == 1
    assert "min.insync.replicas" not in topic.topic_configs


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("KEEL_KAFKA_MIN_INSYNC_REPLICAS", "2")

    settings = KafkaSettings()

    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)
