"""The trust material: signatures and MACs that only the key's holder can make, files a
service can read and nobody else, and a clear refusal when none is configured."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from keel_contracts.errors import ConfigError
from keel_core import trust
from keel_core.trust import Mac, TrustMaterial, TrustSettings


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> TrustMaterial:
    return TrustMaterial(trust.generate(tmp_path_factory.mktemp("trust")))


def test_a_signature_holds_only_for_the_signed_bytes_and_the_signers_key(
    material: TrustMaterial, tmp_path: Path
) -> None:
    signer = material.approval_signer()
    signature = signer.sign(b"approve s1:3:0")
    verifier = material.approval_verifier()
    assert verifier.verify(b"approve s1:3:0", signature)
    assert not verifier.verify(b"approve s1:3:1", signature)
    tampered = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert not verifier.verify(b"approve s1:3:0", tampered)
    assert not verifier.verify(b"approve s1:3:0", "not base64 !")
    other = TrustMaterial(trust.generate(tmp_path / "other")).approval_signer()
    assert not verifier.verify(b"approve s1:3:0", other.sign(b"approve s1:3:0"))


def test_each_identity_has_its_own_audit_key(material: TrustMaterial) -> None:
    verifiers = material.audit_verifiers()
    assert set(verifiers) == set(trust.AUDIT_IDENTITIES)
    signed = material.audit_signer("policy").sign(b"record")
    assert verifiers["policy"].verify(b"record", signed)
    assert not verifiers["memory"].verify(b"record", signed)


def test_a_mac_needs_the_key(material: TrustMaterial) -> None:
    mac = material.ledger_mac()
    tag = mac.mac(b"result")
    assert mac.verify(b"result", tag)
    assert not mac.verify(b"result!", tag)
    assert not Mac(b"x" * 32).verify(b"result", tag)
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Mac(b"short")


def test_private_files_are_the_owners_alone_and_regeneration_keeps_keys(tmp_path: Path) -> None:
    directory = trust.generate(tmp_path / "t")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for private in ("approval-signing.key", "audit-policy.key", "ledger.key"):
        assert stat.S_IMODE((directory / private).stat().st_mode) == 0o600, private
    before = (directory / "approval-signing.key").read_bytes()
    trust.generate(directory)
    assert (directory / "approval-signing.key").read_bytes() == before


def test_without_material_a_service_refuses_to_start_unless_insecure_dev_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="no trust material: set KEEL_TRUST_DIR"):
        trust.load(TrustSettings(dir=None), "policy")
    with pytest.raises(ConfigError, match="does not exist"):
        trust.load(TrustSettings(dir=tmp_path / "missing"), "policy")
    with caplog.at_level(logging.WARNING, logger="keel_core.trust"):
        assert trust.load(TrustSettings(dir=None, insecure_dev=True), "policy") is None
    assert "policy runs WITHOUT trust material" in caplog.text


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty/ledger.key cannot be read"):
        TrustMaterial(tmp_path / "empty").ledger_mac()


def test_keys_never_show_in_a_repr(material: TrustMaterial) -> None:
    assert repr(material.approval_signer()) == "Signer(<private key>)"
    assert repr(material.ledger_mac()) == "Mac(<key>)"


@pytest.mark.parametrize("stem", ["approval-signing", "audit-policy"])
def test_a_rotated_key_signs_anew_and_what_it_signed_still_verifies(
    tmp_path: Path, stem: str
) -> None:
    directory = trust.generate(tmp_path / "t")
    before = TrustMaterial(directory)
    signer = (
        before.approval_signer() if stem == "approval-signing" else before.audit_signer("policy")
    )
    old_signature = signer.sign(b"decided before the rotation")
    trust.rotate(directory, stem)
    after = TrustMaterial(directory)
    verifier = (
        after.approval_verifier()
        if stem == "approval-signing"
        else after.audit_verifiers()["policy"]
    )
    assert verifier.verify(b"decided before the rotation", old_signature)
    fresh = after.approval_signer() if stem == "approval-signing" else after.audit_signer("policy")
    assert fresh.sign(b"x") != signer.sign(b"x")
    assert verifier.verify(b"x", fresh.sign(b"x"))
    # Only the public half of the old key is kept, outside the signing files.
    retired = list((directory / "retired").iterdir())
    assert [p.suffix for p in retired] == [".pub"]
    assert set(after.audit_verifiers()) == set(trust.AUDIT_IDENTITIES)


def test_a_rotated_ledger_key_still_verifies_its_old_macs(tmp_path: Path) -> None:
    directory = trust.generate(tmp_path / "t")
    old = TrustMaterial(directory).ledger_mac()
    tag = old.mac(b"result")
    trust.rotate(directory, "ledger")
    new = TrustMaterial(directory).ledger_mac()
    assert new.mac(b"result") != tag
    assert new.verify(b"result", tag)
    assert stat.S_IMODE((directory / "ledger.key").stat().st_mode) == 0o600
