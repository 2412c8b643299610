"""KafkaSettings' security fields reach every client through ``client_options``."""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

import pytest

from keel_contracts.errors import ConfigError
from keel_core.bus.admin import ensure_topics
from keel_core.bus.connect import client_options
from keel_core.settings import KafkaSettings


@pytest.fixture(autouse=True)
def _no_session_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings here are built from scratch: what the session's own broker put in the
    environment (its admin's credentials) is not theirs."""
    for name in [n for n in os.environ if n.startswith("KEEL_KAFKA_")]:
        monkeypatch.delenv(name)


def test_plaintext_asks_for_nothing() -> None:
    assert client_options(KafkaSettings(security_protocol="PLAINTEXT")) == {
        "security_protocol": "PLAINTEXT"
    }


def test_sasl_ssl_reads_the_password_file_and_the_ca(tmp_path: Path) -> None:
    secret = tmp_path / "svc.password"
    secret.write_text("s3cret\n")
    settings = KafkaSettings(
        security_protocol="SASL_SSL", username="svc", password_file=secret, ssl_ca_file=None
    )
    options = client_options(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "svc"
    assert options["sasl_plain_password"] == "s3cret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_the_environment_configures_a_managed_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEEL_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KEEL_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KEEL_KAFKA_USERNAME", "keel-agent")
    monkeypatch.setenv("KEEL_KAFKA_PASSWORD", "from-env")
    options = client_options(KafkaSettings())
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["sasl_plain_password"] == "from-env"
    assert "ssl_context" not in options


def test_sasl_without_credentials_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="KEEL_KAFKA_USERNAME"):
        client_options(KafkaSettings(security_protocol="SASL_SSL", username="svc"))


def test_an_unreadable_password_file_is_a_config_error(tmp_path: Path) -> None:
    settings = KafkaSettings(
        security_protocol="SASL_PLAINTEXT", username="svc", password_file=tmp_path / "missing"
    )
    with pytest.raises(ConfigError, match="KEEL_KAFKA_PASSWORD_FILE"):
        client_options(settings)


async def test_the_password_never_shows_in_settings_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = KafkaSettings(
        bootstrap="127.0.0.1:1",
        security_protocol="SASL_PLAINTEXT",
        username="svc",
        password="hunter2-secret",
        connect_timeout_s=0.1,
    )
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in settings.model_dump_json()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError) as failed:
        await ensure_topics(settings)
    assert "hunter2-secret" not in str(failed.value)
    assert "hunter2-secret" not in caplog.text
