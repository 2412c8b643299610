"""Drive the repo's Kafka launcher (deploy/kafka/broker.sh) from Python."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from keel_core.errors import ConfigError


def repo_root(start: Path | None = None) -> Path:
    """The checkout that holds deploy/kafka/broker.sh: from KEEL_REPO, the cwd, or this file."""
    candidates = [Path(os.environ["KEEL_REPO"])] if "KEEL_REPO" in os.environ else []
    for base in (start or Path.cwd(), Path(__file__).resolve()):
        candidates += [base, *base.parents]
    for path in candidates:
        if (path / "deploy" / "kafka" / "broker.sh").is_file():
            return path
    raise ConfigError("cannot find the Keel checkout (deploy/kafka/broker.sh); set KEEL_REPO")


def broker_script(root: Path) -> list[str]:
    return ["bash", str(root / "deploy" / "kafka" / "broker.sh")]


def start_broker(root: Path, env: dict[str, str] | None = None) -> str:
    """Start (or reuse) the local broker and return its bootstrap address."""
    done = subprocess.run(
        [*broker_script(root), "start"],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ConfigError("the local Kafka broker did not start (see the lines above)")
    return done.stdout.strip().splitlines()[-1]


def stop_broker(root: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([*broker_script(root), "stop"], env={**os.environ, **(env or {})}, check=False)
