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

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def env_names(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in settings.model_fields}


def test_every_keel_variable_is_a_setting() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    kafka_vars = env_names(KafkaSettings) | env_names(TracingSettings)
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
