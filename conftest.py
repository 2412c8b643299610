"""Session fixtures shared by every test folder: the real Kafka broker and the local stack.

Kafka comes from, in order: ``KEEL_KAFKA_BOOTSTRAP`` (an existing cluster; nothing started); the
official ``apache/kafka`` image through testcontainers when a Docker engine answers; or the
repo's own launcher (deploy/kafka/broker.sh) on free ports with a fresh data directory. Whatever
was started is stopped when the session ends. Only tests that ask for these fixtures start
anything, so ``pytest -m "not kafka and not stack"`` needs no broker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from keel_cli.broker import (
    LocalCluster,
    client_env,
    cluster_env,
    credentials_dir,
    start_broker,
    stop_broker,
)
from keel_cli.stack import LocalStack, free_port, harness_credentials, with_free_ports
from keel_core import trust
from keel_core.bus.admin import ensure_topics
from keel_core.grpc import use_client_credentials
from keel_core.settings import KafkaSettings
from tests.otlp import SpanCollector

REPO = Path(__file__).resolve().parent


def _trust_for_the_run() -> None:
    """Every service a test builds (in this process, or as a process of a stack) reads its
    keys from ``KEEL_TRUST_DIR``: one directory for the whole run, as a deployment has one."""
    if not os.environ.get("KEEL_TRUST_DIR"):
        directory = Path(tempfile.mkdtemp(prefix="keel-trust-"))
        os.environ["KEEL_TRUST_DIR"] = str(trust.generate(directory))


_trust_for_the_run()

# A static reviewer token the stacks accept (`keel approvals approve --token t0ken`).
STATIC_REVIEWER_TOKENS = '{"t0ken": "alice"}'
GUARDS_FILE = "tests/integration/guards.yaml"

# The test process holds the keys of every stack it starts: it dials each service as the
# identity that normally calls it (keel_cli.stack.harness_credentials).
use_client_credentials(harness_credentials)
KAFKA_IMAGE = "apache/kafka:4.1.1"


def docker_engine_available() -> bool:
    if os.environ.get("KEEL_TEST_DOCKER") == "0" or not shutil.which("docker"):
        return False
    try:
        subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def kafka_container() -> Iterator[str]:
    """The official image in KRaft mode, advertised on a fixed free host port."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port = free_port()
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        )
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    container.start()
    try:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        container.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The launcher's broker is secured, as ``make run``'s is: while it runs, the process
    environment names the admin's credentials (so ``KafkaSettings()`` anywhere in the tests
    connects) and the credentials directory (so a ``LocalStack`` runs each service as its own
    principal)."""
    external = os.environ.get("KEEL_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    if docker_engine_available():
        yield from kafka_container()
        return
    data_dir = tempfile.mkdtemp(prefix="keel-test-kafka-")
    env = {
        "KEEL_KAFKA_PORT": str(free_port()),
        "KEEL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "KEEL_KAFKA_DATA_DIR": str(Path(data_dir) / "data"),
        "KEEL_KAFKA_CREDENTIALS_DIR": str(Path(data_dir) / "credentials"),
    }
    credentials = credentials_dir(REPO, env)
    secured = os.environ.get("KEEL_KAFKA_SECURITY", "sasl_ssl") == "sasl_ssl"
    client = {
        **(client_env(credentials, "admin") if secured else {}),
        **({"KEEL_KAFKA_CREDENTIALS_DIR": str(credentials)} if secured else {}),
    }
    saved = {name: os.environ.get(name) for name in client}
    try:
        bootstrap = start_broker(REPO, env)
        os.environ.update(client)
        yield bootstrap
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stop_broker(REPO, env)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def kafka(kafka_bootstrap: str) -> KafkaSettings:
    """Kafka settings for the test broker, with Keel's topics created."""
    settings = KafkaSettings(bootstrap=kafka_bootstrap, connect_timeout_s=30)
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="session")
def otlp() -> Iterator[SpanCollector]:
    """An OTLP/gRPC trace receiver the session stack exports its spans to."""
    collector = SpanCollector()
    collector.start()
    yield collector
    collector.stop()


@pytest.fixture(scope="session")
async def stack(kafka: KafkaSettings, otlp: SpanCollector) -> AsyncIterator[LocalStack]:
    """The six services as real processes on free ports, shared by the session's tests, with
    tracing exported over OTLP to the ``otlp`` fixture."""
    run_dir = Path(tempfile.mkdtemp(prefix="keel-test-stack-"))
    (run_dir / "counts").mkdir()
    local = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=kafka.bootstrap,
        specs=with_free_ports(),
        extra_env={
            "KEEL_TOOL_GATEWAY_TEST_TOOLS_DIR": str(run_dir / "counts"),
            "KEEL_TRACING_EXPORTER": "otlp",
            "KEEL_TRACING_OTLP_ENDPOINT": otlp.endpoint,
            "KEEL_TRACING_EXPORT_DELAY_MS": "200",
            "KEEL_APPROVAL_REVIEWER_TOKENS": STATIC_REVIEWER_TOKENS,
            # Guards that only tests/integration/test_guards.py trips.
            "KEEL_AGENT_LOOP_GUARDS_FILE": str(Path(__file__).parent / GUARDS_FILE),
        },
    )
    try:
        await local.start()
        yield local
    finally:
        codes = await local.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        unclean = {name: code for name, code in codes.items() if code != 0}
        assert not unclean, f"services did not stop cleanly: {unclean}"


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[LocalCluster]:
    """Three secured KRaft nodes of their own (replication factor 3, min ISR 2) on free ports;
    only tests that ask for it start it (tests/integration/test_cluster_replicas.py), stopped
    and removed when the session ends. The process environment is left as it is."""
    data_dir = Path(tempfile.mkdtemp(prefix="keel-test-cluster-"))
    env = {**cluster_env(data_dir / "data"), "KEEL_KAFKA_SECURITY": "sasl_ssl"}
    try:
        bootstrap = start_broker(REPO, env)
        yield LocalCluster(bootstrap, env, Path(env["KEEL_KAFKA_CREDENTIALS_DIR"]))
    finally:
        stop_broker(REPO, env)
        shutil.rmtree(data_dir, ignore_errors=True)
