"""docker-compose.yml brought up for real (issue 14, item 2): Docker Compose v2 over podman's
Docker API socket, the images `make images` built (deploy/podman/compose.local.yml picks
them), a task answered through ``keel.tasks`` and over gRPC, every service healthy and
exporting metrics, and nothing left behind afterwards, whether the test passed or not.

Podman runs a container's HEALTHCHECK from a systemd timer, and these machines have no systemd:
the ``HealthChecks`` thread plays the timer (``podman healthcheck run``) so that compose's
``condition: service_healthy`` and the health states below mean what they do under Docker.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keel_cli.stack import SERVICES, free_ports
from keel_clients import AgentClient, CallOptions, ClientCredentials, HealthClient, open_channel
from keel_contracts.sessions import TaskRequest
from keel_core.grpc.tokens import ROLES, mint_token
from keel_core.trust import TrustMaterial
from tests.deploy.conftest import REPO, BuiltImages, podman

pytestmark = [pytest.mark.compose, pytest.mark.stack, pytest.mark.timeout(900)]

QUESTION = "What is (17 * 23) + 4?"
ANSWER = "395"
# Host ports of the compose file (KEEL_HOST_PORT_*), moved to free ones so the test runs next
# to `make run` and other stacks on the same machine.
HOST_PORTS = (
    "AGENT_LOOP",
    "AGENT_LOOP_METRICS",
    "APPROVAL",
    "APPROVAL_METRICS",
    "APPROVAL_WEB",
    "POLICY_METRICS",
    "MEMORY_METRICS",
    "LLM_GATEWAY_METRICS",
    "TOOL_GATEWAY_METRICS",
    "JAEGER_UI",
    "OTLP",
    "AGENTS",
)


class HealthChecks(threading.Thread):
    """Runs every HEALTHCHECK of the project's containers every ``interval_s`` until stopped."""

    def __init__(self, project: str, interval_s: float = 2.0) -> None:
        super().__init__(name=f"healthchecks-{project}", daemon=True)
        self.project = project
        self.interval_s = interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            ids = podman(
                "ps", "--filter", f"label=com.docker.compose.project={self.project}",
                "--format", "{{.ID}}", check=False,
            ).split()  # fmt: skip
            for container in ids:
                podman("healthcheck", "run", container, check=False, timeout=30)
            self.stopped.wait(self.interval_s)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=60)


class ComposeStack:
    def __init__(self, compose_bin: str, docker_host: str) -> None:
        self.project = f"keel-test-{uuid.uuid4().hex[:8]}"
        self.ports = dict(zip(HOST_PORTS, free_ports(len(HOST_PORTS)), strict=True))
        self.compose_bin = compose_bin
        self.env = {
            **os.environ,
            "DOCKER_HOST": docker_host,
            **{f"KEEL_HOST_PORT_{name}": str(port) for name, port in self.ports.items()},
        }
        self.health = HealthChecks(self.project)
        # Anonymous volumes carry no project label: compared by name with what was there.
        self.volumes_before = set(podman("volume", "ls", "--quiet").split())

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                self.compose_bin,
                "-f", str(REPO / "docker-compose.yml"),
                "-f", str(REPO / "deploy/podman/compose.local.yml"),
                "-p", self.project,
                *args,
            ],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def up(self) -> None:
        self.health.start()
        done = self.compose("up", "--detach", "--no-build", "--quiet-pull")
        assert done.returncode == 0, f"compose up failed:\n{done.stderr[-4000:]}\n{self.logs()}"

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "30", timeout=60).stdout[-8000:]

    def container(self, service: str) -> str:
        return f"{self.project}-{service}-1"

    def health_of(self, service: str) -> str:
        state = json.loads(podman("inspect", self.container(service)))[0]["State"]
        return str((state.get("Health") or state.get("Healthcheck") or {}).get("Status", ""))

    def wait_healthy(self, services: list[str], timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while (pending := [s for s in services if self.health_of(s) != "healthy"]) and (
            time.monotonic() < deadline
        ):
            # The health checks run on their own thread; wait for its next round.
            self.health.stopped.wait(self.health.interval_s)
        assert not pending, f"not healthy: {pending}\n{self.logs()}"

    def trust_dir(self) -> Path:
        volume = f"{self.project}_trust"
        return Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).strip())

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        found = {
            "containers": podman("ps", "-a", "--filter", label, "--format", "{{.Names}}"),
            "volumes": podman("volume", "ls", "--quiet"),
            "networks": podman("network", "ls", "--filter", label, "--format", "{{.Name}}"),
        }
        left = {kind: sorted(set(names.split())) for kind, names in found.items()}
        left["volumes"] = sorted(set(left["volumes"]) - self.volumes_before)
        return {kind: names for kind, names in left.items() if names}

    def down(self) -> None:
        self.health.stop()
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10")
        # Whatever compose could not remove, podman does: nothing outlives the test.
        remove = {"containers": ["rm", "-f"], "volumes": ["volume", "rm", "-f"],
                  "networks": ["network", "rm", "-f"]}  # fmt: skip
        for kind, names in self.leftovers().items():
            podman(*remove[kind], *names, check=False)


@pytest.fixture
def stack(images: BuiltImages, compose_bin: str, docker_host: str) -> Iterator[ComposeStack]:
    stack = ComposeStack(compose_bin, docker_host)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def submitter(trust_dir: Path) -> ClientCredentials:
    """The operator's certificate and a token minted with the deployment's dev token key —
    what `keel` itself holds in the compose `cli` service."""
    material = TrustMaterial(trust_dir)
    token = mint_token(
        material.token_signing_key(), sub="compose-test", tenant="*", roles=ROLES, ttl_s=600
    )
    return ClientCredentials(material.tls_identity("operator"), token)


async def answer_over_grpc(target: str, credentials: ClientCredentials) -> str:
    async with open_channel(target, credentials) as channel:
        agent = AgentClient(channel, CallOptions(timeout_s=30))
        session_id = await agent.submit(TaskRequest(goal=QUESTION))
        async for _event in agent.stream_events(session_id):
            if (view := await agent.get(session_id)).finished:
                return f"{view.status}: {view.answer or view.error}"
        view = await agent.get(session_id)
        return f"{view.status}: {view.answer or view.error}"


def agent_card(port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/.well-known/agent-card.json"
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        card: dict[str, Any] = json.loads(reply.read())
    return card


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        return str(reply.read().decode())


async def test_the_compose_stack_answers_a_task_and_goes_away_leaving_nothing(
    stack: ComposeStack,
) -> None:
    services = [spec.name for spec in SERVICES]
    stack.wait_healthy(["kafka", *services, "agents-server"])

    # Over gRPC from the host: mutual TLS with the trust volume's operator certificate.
    credentials = submitter(stack.trust_dir())
    target = f"127.0.0.1:{stack.ports['AGENT_LOOP']}"
    async with open_channel(target, credentials) as channel:
        assert await HealthClient(channel, CallOptions(timeout_s=5)).serving()
    assert ANSWER in await answer_over_grpc(target, credentials)

    # Through keel.tasks: the `cli` service (on the compose network, where Kafka is).
    cli = stack.compose("run", "--rm", "cli", "submit", QUESTION, "--via", "kafka",
                        "--timeout", "120")  # fmt: skip
    assert cli.returncode == 0, f"{cli.stdout}\n{cli.stderr[-3000:]}"
    assert ANSWER in cli.stdout

    # The agents server (MCP/A2A) answers its public card on its published loopback port.
    card = agent_card(stack.ports["AGENTS"])
    assert {"default", "run_plan"} <= {skill["id"] for skill in card["skills"]}

    # Every service exports Prometheus metrics on its published port.
    for spec in SERVICES:
        port = stack.ports[f"{spec.name.upper().replace('-', '_')}_METRICS"]
        assert "# TYPE keel_" in scrape(port), f"{spec.name}: no keel_ metrics"

    stack.down()
    assert stack.leftovers() == {}
