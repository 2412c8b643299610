"""Drive the repo's Kafka launcher (deploy/kafka/broker.sh) from Python."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from keel_cli.console import say
from keel_contracts.errors import ConfigError


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
    """The launcher's lines are relayed, not inherited: a script writing to a closed pipe
    would die of SIGPIPE before the broker stopped."""
    done = subprocess.run(
        [*broker_script(root), "stop"],
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    for line in done.stdout.splitlines():
        say(line)


@asynccontextmanager
async def local_broker(full_jit: bool = True) -> AsyncIterator[str]:
    """``KEEL_KAFKA_BOOTSTRAP`` when set; else a broker of its own on free ports in a
    temporary data directory, stopped and removed afterwards. ``full_jit`` trades ~1 s of
    start-up for acknowledgements about twice as fast once warm (benchmarks want that)."""
    external = os.environ.get("KEEL_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    from keel_cli.stack import free_ports

    client, controller = free_ports(2)
    data_dir = tempfile.mkdtemp(prefix="keel-kafka-")
    env = {
        "KEEL_KAFKA_PORT": str(client),
        "KEEL_KAFKA_CONTROLLER_PORT": str(controller),
        "KEEL_KAFKA_DATA_DIR": str(Path(data_dir) / "data"),
    }
    if full_jit:
        env["KEEL_KAFKA_JVM_OPTS"] = os.environ.get("KEEL_KAFKA_JVM_OPTS", "-XX:+UseSerialGC")
    root = repo_root()
    try:
        yield await asyncio.to_thread(start_broker, root, env)
    finally:
        await asyncio.to_thread(stop_broker, root, env)
        shutil.rmtree(data_dir, ignore_errors=True)
