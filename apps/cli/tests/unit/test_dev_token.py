"""``keel dev token`` mints a token the services verify; the CLI's own calls present the
operator certificate and a self-minted operator token; insecure dev mode says so."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from keel_cli.config import CliSettings
from keel_cli.credentials import credentials
from keel_cli.main import main
from keel_core import trust
from keel_core.grpc.security import server_security, token_verifier


def test_dev_token_mints_what_the_services_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = trust.generate(tmp_path / "trust")
    monkeypatch.setenv("KEEL_TRUST_DIR", str(directory))
    with pytest.raises(SystemExit) as done:
        main(
            ["dev", "token", "--sub", "alice", "--tenant", "acme", "--roles", "reviewer,submitter"]
        )
    assert done.value.code == 0
    token = capsys.readouterr().out.strip()
    material = trust.TrustMaterial(directory)
    principal = token_verifier(material, trust.TrustSettings()).verify(token)
    assert (principal.name, principal.tenant, principal.roles) == (
        "alice",
        "acme",
        frozenset({"reviewer", "submitter"}),
    )


def test_the_cli_presents_the_operator_identity(tmp_path: Path) -> None:
    directory = trust.generate(tmp_path / "trust")
    settings = CliSettings(trust=trust.TrustSettings(dir=directory))
    found = credentials(settings)
    assert found is not None
    assert found.tls.name == "operator"
    principal = token_verifier(trust.TrustMaterial(directory), settings.trust).verify(found.token)
    assert (principal.name, principal.tenant) == ("operator", "*")
    configured = credentials(settings.model_copy(update={"token": "from-the-idp"}))
    assert configured is not None
    assert configured.token == "from-the-idp"


def test_plaintext_grpc_only_in_the_insecure_dev_mode_and_it_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEEL_TRUST_DIR", raising=False)
    with caplog.at_level(logging.WARNING):
        assert server_security("policy", trust.TrustSettings(insecure_dev=True)) is None
    assert "serves gRPC WITHOUT TLS" in caplog.text
