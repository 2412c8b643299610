"""deploy/models/fetch.py (joining and verifying part wheels) and the pinned catalog."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from keel_contracts.errors import FailedPrecondition
from keel_llm_gateway.adapters.local_model_catalog import CATALOG, verify_file

REPO = Path(__file__).resolve().parents[4]
MODELS = REPO / "deploy" / "models"


def load_fetch() -> ModuleType:
    spec = importlib.util.spec_from_file_location("keel_fetch_models", MODELS / "fetch.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


fetch = load_fetch()


def test_the_gateway_catalog_pins_the_same_files_as_models_json() -> None:
    recorded = json.loads((MODELS / "models.json").read_text())["models"]

    assert set(recorded) == set(CATALOG)
    for name, entry in CATALOG.items():
        assert (entry.file, entry.size, entry.sha256) == (
            recorded[name]["file"],
            recorded[name]["size"],
            recorded[name]["sha256"],
        )


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_each_requirements_file_pins_every_part_in_order_with_a_hash(name: str) -> None:
    spec = fetch.load_catalog()[name]
    fetch.check_requirements(spec)  # raises when they disagree

    assert spec.requirements.read_text().count("--hash=sha256:") == len(spec.parts)


def make_model(tmp_path: Path, slices: list[bytes]) -> tuple[object, Path]:
    """A two-or-more-part fake model: wheels in a folder and the spec that describes them."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    parts = []
    for index, data in enumerate(slices, start=1):
        package = f"fake-model-part{index}"
        member = f"fake_model_part{index}/data/part{index:02d}.bin"
        with zipfile.ZipFile(wheels / f"fake_model_part{index}-1.0-py3-none-any.whl", "w") as z:
            z.writestr(f"fake_model_part{index}/__init__.py", "")
            z.writestr(member, data)
        parts.append(fetch.Part(package, "1.0", member))
    joined = b"".join(slices)
    spec = fetch.ModelSpec(
        name="fake",
        file="fake.gguf",
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
        requirements=tmp_path / "fake.requirements.txt",
        parts=tuple(parts),
    )
    return spec, wheels


def test_parts_are_joined_in_catalog_order_and_verified(tmp_path: Path) -> None:
    spec, wheels = make_model(tmp_path, [b"GGUF-first-", b"second-", b"third"])
    target = tmp_path / "fake.gguf"

    fetch.join_parts(spec, wheels, target)

    assert target.read_bytes() == b"GGUF-first-second-third"
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_wrong_digest_leaves_no_file_behind(tmp_path: Path) -> None:
    spec, wheels = make_model(tmp_path, [b"one", b"two"])
    tampered = fetch.ModelSpec(**{**spec.__dict__, "sha256": "0" * 64})
    target = tmp_path / "fake.gguf"

    with pytest.raises(fetch.FetchError, match="refusing"):
        fetch.join_parts(tampered, wheels, target)

    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".joining")] == []


def test_a_wheel_with_an_unexpected_slice_is_refused(tmp_path: Path) -> None:
    spec, wheels = make_model(tmp_path, [b"one", b"two"])
    with zipfile.ZipFile(wheels / "fake_model_part2-1.0-py3-none-any.whl", "a") as z:
        z.writestr("fake_model_part2/data/extra.bin", b"surprise")

    with pytest.raises(fetch.FetchError, match="exactly one slice"):
        fetch.join_parts(spec, wheels, tmp_path / "fake.gguf")


def test_a_verified_file_is_not_fetched_again_and_a_changed_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, _ = make_model(tmp_path, [b"one", b"two"])
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fake.gguf").write_bytes(b"onetwo")

    def no_download(*_: object) -> None:
        raise AssertionError("must not download when the verified file exists")

    monkeypatch.setattr(fetch, "download", no_download)
    assert fetch.fetch(spec, cache) == cache / "fake.gguf"

    (cache / "fake.gguf").write_bytes(b"onetwO")
    with pytest.raises(fetch.FetchError, match="delete it to refetch"):
        fetch.fetch(spec, cache)


def test_requirements_that_disagree_with_the_catalog_are_refused(tmp_path: Path) -> None:
    spec, _ = make_model(tmp_path, [b"one", b"two"])
    spec.requirements.write_text(f"fake-model-part1==1.0 --hash=sha256:{'a' * 64}\n")

    with pytest.raises(fetch.FetchError, match="does not pin exactly"):
        fetch.check_requirements(spec)


def test_verify_file_checks_presence_size_and_digest(tmp_path: Path) -> None:
    weights = tmp_path / "m.gguf"
    digest = hashlib.sha256(b"weights").hexdigest()

    with pytest.raises(FailedPrecondition, match="does not exist"):
        verify_file(weights, digest, name="qwen2.5-coder-0.5b")
    weights.write_bytes(b"weights")
    with pytest.raises(FailedPrecondition, match="has 7 bytes, expected 8"):
        verify_file(weights, digest, size=8)
    with pytest.raises(FailedPrecondition, match="sha256"):
        verify_file(weights, hashlib.sha256(b"other").hexdigest())
    verify_file(weights, digest.upper(), size=7)
