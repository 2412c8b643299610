"""Drive the repo's Kafka launcher (deploy/kafka/broker.sh) from Python.

The launcher's default is the secured mode (TLS + SASL/SCRAM-SHA-512, ACLs from
``keel_contracts.acl``): it writes ``ca.pem`` and one ``<principal>.password`` per principal into
its credentials directory, and the helpers here turn that directory into the ``KEEL_KAFKA_*``
settings of one principal (``client_env``, ``kafka_settings``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from keel_cli.console import say
from keel_contracts.errors import ConfigError
from keel_core.settings import KafkaSettings

ADMIN = "admin"

# The launcher's cluster mode: this many KRaft nodes, every topic on all three, two in sync.
CLUSTER_NODES = 3


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


def secured(env: dict[str, str] | None = None) -> bool:
    """Whether the launcher starts (started) this broker in its secured mode, the default."""
    mode = (env or {}).get("KEEL_KAFKA_SECURITY") or os.environ.get("KEEL_KAFKA_SECURITY")
    return (mode or "sasl_ssl") == "sasl_ssl"


def credentials_dir(root: Path, env: dict[str, str] | None = None) -> Path:
    """Where the launcher keeps the clients' credentials for the broker ``env`` describes: its
    ``KEEL_KAFKA_CREDENTIALS_DIR``, else ``<data dir>/credentials``. Only ``env`` names the
    directory (never the process environment), so a second broker never shares the first's."""
    env = env or {}
    if env.get("KEEL_KAFKA_CREDENTIALS_DIR"):
        return Path(env["KEEL_KAFKA_CREDENTIALS_DIR"])
    data = env.get("KEEL_KAFKA_DATA_DIR") or os.environ.get("KEEL_KAFKA_DATA_DIR")
    return (Path(data) if data else root / ".run" / "kafka") / "credentials"


def client_env(credentials: Path, principal: str) -> dict[str, str]:
    """The ``KEEL_KAFKA_*`` settings with which ``principal`` connects to the secured local
    broker: its password file (never the password itself) and the broker's CA."""
    return {
        "KEEL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KEEL_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KEEL_KAFKA_USERNAME": principal,
        "KEEL_KAFKA_PASSWORD_FILE": str(credentials / f"{principal}.password"),
        "KEEL_KAFKA_SSL_CA_FILE": str(credentials / "ca.pem"),
    }


def kafka_settings(
    bootstrap: str, credentials: Path | None, principal: str = ADMIN, **fields: object
) -> KafkaSettings:
    """Settings for ``principal`` on the local broker (plaintext when ``credentials`` is None);
    the fields given here win over the process environment."""
    security: dict[str, object] = {"security_protocol": "PLAINTEXT"}
    if credentials is not None:
        security = {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "username": principal,
            "password_file": credentials / f"{principal}.password",
            "ssl_ca_file": credentials / "ca.pem",
        }
    return KafkaSettings.model_validate({"bootstrap": bootstrap, **security, **fields})


@dataclass(frozen=True)
class LocalCluster:
    """A launcher cluster: its bootstrap list, the launcher settings that start (or restart)
    its nodes and name their pid files, and the clients' credentials directory."""

    bootstrap: str
    env: dict[str, str]
    credentials: Path


def cluster_env(data_dir: Path, nodes: int = CLUSTER_NODES) -> dict[str, str]:
    """The launcher's environment for a cluster of ``nodes`` on free ports in ``data_dir``
    (each node in ``<data_dir>/node-N``, one credentials directory for all)."""
    from keel_cli.stack import free_ports

    ports = free_ports(2 * nodes)
    return {
        "KEEL_KAFKA_NODES": str(nodes),
        "KEEL_KAFKA_PORTS": ",".join(map(str, ports[:nodes])),
        "KEEL_KAFKA_CONTROLLER_PORTS": ",".join(map(str, ports[nodes:])),
        "KEEL_KAFKA_DATA_DIR": str(data_dir),
        "KEEL_KAFKA_CREDENTIALS_DIR": str(data_dir / "credentials"),
    }


def topic_env(nodes: int) -> dict[str, str]:
    """Keel's topic settings for a launcher cluster of ``nodes``: as many copies as nodes (at
    most 3) and one fewer in sync, so one node may die without stopping acks=all writes."""
    copies = min(nodes, CLUSTER_NODES)
    return {
        "KEEL_KAFKA_REPLICATION_FACTOR": str(copies),
        "KEEL_KAFKA_MIN_INSYNC_REPLICAS": str(max(copies - 1, 1)),
    }


def node_pid(env: dict[str, str], node: int) -> int | None:
    """The process of cluster node ``node`` (1-based) started with ``env``, if it runs."""
    path = Path(env["KEEL_KAFKA_DATA_DIR"]) / f"node-{node}" / "broker.pid"
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def kill_node(env: dict[str, str], node: int) -> None:
    """SIGKILL one node of a launcher cluster (a crash, not a shutdown); ``start_broker`` with
    the same ``env`` starts it again and leaves the others as they run."""
    pid = node_pid(env, node)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def start_broker(root: Path, env: dict[str, str] | None = None) -> str:
    """Start (or reuse) the local broker and return its bootstrap address."""
    env = {**(env or {})}
    env.setdefault("KEEL_KAFKA_CREDENTIALS_DIR", str(credentials_dir(root, env)))
    done = subprocess.run(
        [*broker_script(root), "start"],
        env={**os.environ, **env},
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
    """A plaintext broker (``local_kafka`` unsecured), for benchmarks that compare with earlier
    numbers; yields its bootstrap address."""
    async with local_kafka(full_jit, secure=False) as (kafka, _credentials):
        yield kafka.bootstrap


@asynccontextmanager
async def local_kafka(
    full_jit: bool = True, secure: bool = True, nodes: int = 1
) -> AsyncIterator[tuple[KafkaSettings, Path | None]]:
    """``KEEL_KAFKA_BOOTSTRAP`` when set (with the environment's security settings); else a
    broker of its own on free ports in a temporary data directory, stopped and removed
    afterwards. Yields the admin's settings and the credentials directory (None: plaintext),
    which a ``LocalStack(kafka_credentials=...)`` hands out one principal per service.
    ``nodes=3``: the launcher's cluster, its topic settings in the yielded settings (services
    of a stack need ``topic_env(nodes)`` too).
    ``full_jit`` trades ~1 s of start-up for acknowledgements about twice as fast once warm
    (benchmarks want that)."""
    external = os.environ.get("KEEL_KAFKA_BOOTSTRAP")
    if external:
        yield KafkaSettings(bootstrap=external), None
        return
    from keel_cli.stack import free_ports

    data_dir = tempfile.mkdtemp(prefix="keel-kafka-")
    if nodes > 1:
        env = cluster_env(Path(data_dir) / "data", nodes)
    else:
        client, controller = free_ports(2)
        env = {
            "KEEL_KAFKA_PORT": str(client),
            "KEEL_KAFKA_CONTROLLER_PORT": str(controller),
            "KEEL_KAFKA_DATA_DIR": str(Path(data_dir) / "data"),
        }
    env["KEEL_KAFKA_SECURITY"] = "sasl_ssl" if secure else "plaintext"
    if full_jit:
        env["KEEL_KAFKA_JVM_OPTS"] = os.environ.get("KEEL_KAFKA_JVM_OPTS", "-XX:+UseSerialGC")
    root = repo_root()
    credentials = credentials_dir(root, env) if secure else None
    try:
        bootstrap = await asyncio.to_thread(start_broker, root, env)
        topics: dict[str, object] = {}
        if nodes > 1:
            topics = {name[len("KEEL_KAFKA_") :].lower(): v for name, v in topic_env(nodes).items()}
        yield kafka_settings(bootstrap, credentials, ADMIN, **topics), credentials
    finally:
        await asyncio.to_thread(stop_broker, root, env)
        shutil.rmtree(data_dir, ignore_errors=True)
