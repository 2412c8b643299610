"""The quality bar, enforced where CI runs: ruff (lint and format) and mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_is_clean() -> None:
    lint = run(str(BIN / "ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout
    fmt = run(str(BIN / "ruff"), "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout


def test_mypy_strict_passes_on_libs_and_services() -> None:
    members = [*REPO.glob("libs/*/src"), *REPO.glob("apps/*/src"), *REPO.glob("services/*/src")]
    sources = sorted(str(m.relative_to(REPO)) for m in members if m.parent.name != "protos")
    checked = run(str(BIN / "mypy"), *sources)
    assert checked.returncode == 0, checked.stdout
