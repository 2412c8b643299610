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
