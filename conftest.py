"""Session fixtures shared by every test folder: the real Kafka broker and the local stack.

Kafka comes from, in order: ``KEEL_KAFKA_BOOTSTRAP`` (an existing cluster; nothing started), or
the repo's own launcher (deploy/kafka/broker.sh) on free ports with a fresh data directory,
stopped when the session ends. Only tests that ask for these fixtures start anything, so
``pytest -m "not kafka and not stack"`` needs no broker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from keel_cli.broker import start_broker, stop_broker
from keel_cli.stack import LocalStack, free_port, with_free_ports
from keel_core.bus.admin import ensure_topics
from keel_core.settings import KafkaSettings

REPO = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("KEEL_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    data_dir = tempfile.mkdtemp(prefix="keel-test-kafka-")
    env = {
        "KEEL_KAFKA_PORT": str(free_port()),
        "KEEL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "KEEL_KAFKA_DATA_DIR": data_dir,
    }
    try:
        yield start_broker(REPO, env)
    finally:
        stop_broker(REPO, env)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def kafka(kafka_bootstrap: str) -> KafkaSettings:
    """Kafka settings for the test broker, with Keel's topics created."""
    settings = KafkaSettings(bootstrap=kafka_bootstrap, connect_timeout_s=30)
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="session")
async def stack(kafka: KafkaSettings) -> AsyncIterator[LocalStack]:
    """The six services as real processes on free ports, shared by the session's tests."""
    run_dir = Path(tempfile.mkdtemp(prefix="keel-test-stack-"))
    local = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=kafka.bootstrap,
        specs=with_free_ports(),
    )
    try:
        await local.start()
        yield local
    finally:
        codes = await local.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        unclean = {name: code for name, code in codes.items() if code != 0}
        assert not unclean, f"services did not stop cleanly: {unclean}"
