"""The images `make images` builds, run for real with podman (issue 14, item 1).

What a deployment relies on: the service image runs as a non-root user on a read-only root
filesystem, carries no compilers and no pip, has a HEALTHCHECK, and every service module
imports in it; the Kafka image runs a KRaft broker that a Keel client can use; both come
from the layer cache when nothing changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from keel_cli.stack import SERVICES, free_port
from keel_contracts.topics import TASKS
from keel_core.bus.admin import ensure_topics
from keel_core.settings import KafkaSettings
from tests.deploy.conftest import IMAGE, KAFKA_IMAGE, PODMAN, REPO, BuiltImages, podman

pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]


def run_in_image(*command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in the service image as it runs in production: read-only root, /tmp tmpfs."""
    return subprocess.run(
        [*PODMAN, "run", "--rm", "--read-only", "--tmpfs", "/tmp", IMAGE, *command],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_images_prints_each_image_size_and_build_time(images: BuiltImages) -> None:
    for image in ("keel:dev", "keel-kafka:4.1.1"):
        line = next(line for line in images.report.splitlines() if image in line)
        assert " MB " in line, line
        assert "built in" in line, line


def test_the_service_image_runs_every_service_as_non_root_on_a_read_only_root(
    images: BuiltImages,
) -> None:
    modules = ", ".join([spec.module for spec in SERVICES] + ["keel_agents_server"])
    probe = run_in_image(
        "python",
        "-c",
        f"import os, {modules}, keel_cli; "
        "open('/tmp/ok', 'w').write('x'); "
        "print(os.getuid(), os.getgid()); "
        "open('/opt/keel/x', 'w')",
    )
    assert probe.stdout.split() == ["10001", "10001"], probe.stderr
    assert "Read-only file system" in probe.stderr


def test_the_service_image_runs_the_agents_server(images: BuiltImages) -> None:
    """Its entry point is in the image (docker-compose.yml and the chart run it), and it
    refuses to start without trust material rather than run unauthenticated."""
    helped = run_in_image("keel-agents-server", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--stdio" in helped.stdout
    refused = run_in_image("python", "-m", "keel_agents_server")
    assert refused.returncode == 2
    assert "needs KEEL_TRUST_DIR" in refused.stderr


def test_the_memory_store_opens_on_a_read_only_root(images: BuiltImages) -> None:
    """Milvus Lite writes under ~/.cache; on a read-only root it failed to create any
    collection ("Mmap manager has not been init") until HOME moved to the /tmp tmpfs."""
    probe = run_in_image(
        "python",
        "-c",
        "from pymilvus import MilvusClient; "
        "c = MilvusClient('/tmp/probe.db'); c.create_collection('c', dimension=4); print('ok')",
    )
    assert probe.stdout.strip().endswith("ok"), probe.stderr[-2000:]


def test_the_service_image_has_no_compiler_and_no_pip(images: BuiltImages) -> None:
    found = run_in_image(
        "sh", "-c", "for t in gcc cc g++ make pip pip3; do command -v $t; done; true"
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == ""
    assert run_in_image("python", "-m", "pip", "--version").returncode != 0


def test_the_service_image_declares_a_grpc_healthcheck(images: BuiltImages) -> None:
    config = json.loads(podman("image", "inspect", IMAGE))[0]
    health = config.get("Healthcheck") or config["Config"]["Healthcheck"]
    assert health["Test"][-1].endswith("healthcheck.py"), health
    assert config["Config"]["User"] == "10001:10001"


def test_an_unchanged_rebuild_comes_from_the_layer_cache(images: BuiltImages) -> None:
    """The same image id back: every layer was reused, so a rebuild costs seconds."""
    before = podman("image", "inspect", "--format", "{{.Id}}", IMAGE).strip()
    kafka_before = podman("image", "inspect", "--format", "{{.Id}}", KAFKA_IMAGE).strip()
    done = subprocess.run(
        ["bash", str(REPO / "deploy/podman/images.sh")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "KEEL_ENGINE": "podman", "PYTHON": str(REPO / ".venv/bin/python")},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert podman("image", "inspect", "--format", "{{.Id}}", IMAGE).strip() == before
    assert podman("image", "inspect", "--format", "{{.Id}}", KAFKA_IMAGE).strip() == kafka_before


async def test_the_kafka_image_runs_a_broker_keel_can_use(images: BuiltImages) -> None:
    """Keel's own admin creates its topics on it, and a record is written and acknowledged."""
    port = free_port()
    name = f"keel-test-kafka-{uuid.uuid4().hex[:8]}"
    podman(
        "run", "-d", "--rm", "--name", name,
        "-p", f"127.0.0.1:{port}:9092",
        "-e", f"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:{port}",
        KAFKA_IMAGE,
    )  # fmt: skip
    try:
        # Plaintext, whatever KEEL_KAFKA_* the test session exported for its own secured
        # broker (settings read the environment: in the full suite they said SASL_SSL).
        settings = KafkaSettings(
            bootstrap=f"127.0.0.1:{port}",
            connect_timeout_s=120,
            security_protocol="PLAINTEXT",
            username="",
            password_file=None,
            ssl_ca_file=None,
            ssl_cert_file=None,
            ssl_key_file=None,
        )
        try:
            await ensure_topics(settings)
        except Exception:
            print("the broker's last lines:\n" + podman("logs", "--tail", "40", name, check=False))
            raise
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
        await producer.start()
        try:
            written = await producer.send_and_wait(TASKS, b"{}", key=b"images-test")
        finally:
            await producer.stop()
        assert written.topic == TASKS
        assert written.offset == 0
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)


def test_the_model_target_runs_the_offline_model_on_a_read_only_root(
    images: BuiltImages,
) -> None:
    """`make images MODEL=1`: llama.cpp (with its OpenMP runtime) and the GGUF weights where
    the LLM gateway's local provider looks for them, generating on a read-only root."""
    done = subprocess.run(
        ["bash", str(REPO / "deploy/podman/images.sh"), "--model"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "KEEL_ENGINE": "podman", "PYTHON": str(REPO / ".venv/bin/python")},
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "keel:dev-model" in done.stdout
    probe = subprocess.run(
        [*PODMAN, "run", "--rm", "--read-only", "--tmpfs", "/tmp", f"{IMAGE}-model", "python", "-c",
         "import os; from llama_cpp import Llama; "
         "d = os.environ['KEEL_LLM_GATEWAY_LOCAL_MODELS_DIR']; "
         "m = Llama(d + '/qwen2.5-coder-0.5b-instruct.gguf', n_ctx=256, verbose=False); "
         "print(m('def add(a, b):', max_tokens=8)['choices'][0]['text'])"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert "return" in probe.stdout
