"""docker-compose.yml cannot run here (no Docker engine), so check it against the code: every
KEEL_* variable must be a real setting of the service it configures."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml
from pydantic_settings import BaseSettings

from keel_cli.config import CliSettings
from keel_cli.stack import SERVICES
from keel_core.settings import KafkaSettings, TracingSettings
from keel_core.trust import TrustSettings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def env_names(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in settings.model_fields}


def test_every_keel_variable_is_a_setting() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    kafka_vars = env_names(KafkaSettings) | env_names(TracingSettings) | env_names(TrustSettings)
    for spec in SERVICES:
        service = compose[spec.name]
        assert service["command"] == ["python", "-m", spec.module]
        settings_cls = importlib.import_module(f"{spec.module}.config").Settings
        known = env_names(settings_cls) | kafka_vars
        # Nested settings (KEEL_X_FIELD__SUB) are checked by their top-level field.
        names = {k.split("__")[0] for k in service["environment"] if k.startswith("KEEL_")}
        unknown = names - known
        assert not unknown, f"{spec.name}: not settings: {unknown}"
    cli_known = env_names(CliSettings) | kafka_vars
    assert set(compose["cli"]["environment"]) <= cli_known


def test_kafka_is_the_official_image_in_kraft_mode() -> None:
    kafka = yaml.safe_load(COMPOSE.read_text())["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_every_published_port_is_on_loopback_only() -> None:
    """A reviewer's or a submitter's port on every interface is open to the whole network."""
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    published = [port for service in compose.values() for port in service.get("ports", [])]
    assert published
    assert all(port.startswith("127.0.0.1:") for port in published), published


def test_every_keel_service_reads_the_trust_volume() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in [spec.name for spec in SERVICES] + ["cli"]:
        assert compose[name]["environment"]["KEEL_TRUST_DIR"] == "/trust", name
        assert "trust:/trust:ro" in compose[name]["volumes"], name
    assert compose["trust"]["entrypoint"] == ["keel", "dev", "trust", "/trust"]


def test_the_agents_server_runs_as_its_own_identity_behind_the_agent_loop() -> None:
    """MCP/A2A for other agent systems: its KEEL_* variables are its settings, the trust volume
    gives it its own certificate and the token keys, it starts once the agent loop is healthy,
    and its one port is published on loopback."""
    from keel_agents_server import AgentsServerSettings

    server = yaml.safe_load(COMPOSE.read_text())["services"]["agents-server"]
    assert server["command"] == ["python", "-m", "keel_agents_server"]
    known = env_names(AgentsServerSettings) | env_names(TrustSettings)
    assert {k for k in server["environment"] if k.startswith("KEEL_")} <= known
    assert server["environment"]["KEEL_TRUST_DIR"] == "/trust"
    assert "trust:/trust:ro" in server["volumes"]
    assert server["environment"]["KEEL_AGENTS_AGENT_LOOP_TARGET"] == "agent-loop:50051"
    assert server["depends_on"]["agent-loop"] == {"condition": "service_healthy"}
    assert "kafka" not in server["depends_on"]  # it has no Kafka client
    assert server["ports"] == ["127.0.0.1:${KEEL_HOST_PORT_AGENTS:-8790}:8790"]
    local = yaml.safe_load((COMPOSE.parent / "deploy/podman/compose.local.yml").read_text())
    assert local["services"]["agents-server"]["image"] == "localhost/keel:dev"
