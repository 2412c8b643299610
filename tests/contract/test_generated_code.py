"""The checked-in generated code must be exactly what the protos produce today."""

from __future__ import annotations

import filecmp
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKED_IN = REPO / "libs" / "protos" / "src"


def _load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("keel_gen", REPO / "libs" / "protos" / "gen.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.is_file() and p.suffix in {".py", ".pyi"} and "__pycache__" not in p.parts
    }


def test_generated_code_is_current(tmp_path: Path) -> None:
    _load_generator().generate(tmp_path)
    fresh, current = _files(tmp_path), _files(CHECKED_IN)
    assert sorted(fresh) == sorted(current), "run `make protos`: generated files differ"
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], current[name], shallow=False)]
    assert not stale, f"run `make protos`: stale generated code in {stale}"


def test_every_service_contract_exists() -> None:
    protos = {p.parent.parent.name for p in (REPO / "proto" / "keel").glob("*/v1/*.proto")}
    assert protos == {"common", "agent", "llm", "tool", "policy", "memory", "approval"}
