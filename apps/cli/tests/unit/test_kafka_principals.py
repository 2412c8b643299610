"""Each service of a local stack connects to the secured broker as its own principal."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel_cli.broker import credentials_dir, kafka_settings, secured
from keel_cli.stack import SERVICES, LocalStack


def test_each_service_gets_its_own_principal_and_password_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a caller running as the admin has in its environment must not leak to services.
    monkeypatch.setenv("KEEL_KAFKA_USERNAME", "admin")
    monkeypatch.setenv("KEEL_KAFKA_PASSWORD", "the-admins-password")
    credentials = tmp_path / "credentials"
    stack = LocalStack(
        run_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", kafka_credentials=credentials
    )
    for spec in SERVICES:
        env = stack.env_for(spec)
        assert env["KEEL_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KEEL_KAFKA_USERNAME"] == spec.name
        assert env["KEEL_KAFKA_PASSWORD_FILE"] == str(credentials / f"{spec.name}.password")
        assert env["KEEL_KAFKA_SSL_CA_FILE"] == str(credentials / "ca.pem")
        assert "KEEL_KAFKA_PASSWORD" not in env


def test_the_environment_names_the_credentials_of_a_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_KAFKA_CREDENTIALS_DIR", str(tmp_path))
    stack = LocalStack(run_dir=tmp_path, kafka_bootstrap="127.0.0.1:1")
    assert stack.env_for(stack.spec("approval"))["KEEL_KAFKA_USERNAME"] == "approval"


def test_the_launcher_is_secured_unless_told_plaintext(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_KAFKA_SECURITY", raising=False)
    assert secured()
    assert not secured({"KEEL_KAFKA_SECURITY": "plaintext"})


def test_a_second_broker_never_shares_the_first_ones_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_KAFKA_CREDENTIALS_DIR", "/the/session/brokers")
    own = credentials_dir(tmp_path, {"KEEL_KAFKA_DATA_DIR": str(tmp_path / "kafka")})
    assert own == tmp_path / "kafka" / "credentials"


def test_settings_for_a_principal_win_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_KAFKA_USERNAME", "admin")
    settings = kafka_settings("127.0.0.1:1", tmp_path, "operator")
    assert settings.username == "operator"
    assert settings.password_file == tmp_path / "operator.password"
    assert kafka_settings("127.0.0.1:1", None).security_protocol == "PLAINTEXT"
