"""A real Milvus server for tests: PyPI's embedded Milvus standalone (``milvus`` 2.3.5), installed
into its own cached venv by deploy/milvus/install.sh and run on free 127.0.0.1 ports with a
fresh data directory.

Every port is chosen here, not left to the launcher: its defaults (19530, 53100, …) would clash
with a Milvus already running, and its embedded etcd listens on 2379/2380 whatever
``--etcd-port`` says, so a second server on the machine (another test run) dies at start with a
nil-pointer panic. ``ETCD_CONFIG_PATH`` (Milvus reads its settings from the environment too)
points the embedded etcd at an etcd config with ports of its own.

The launcher never notices that the server under it died (it waits on a flag, not the process),
so readiness is a pymilvus call that answers, under a deadline; and the server ignores a plain
SIGTERM for minutes when idle, so stopping is SIGTERM to the process group, a short grace, then
SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pymilvus import MilvusClient, MilvusException

from keel_cli.stack import free_ports

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "deploy" / "milvus" / "install.sh"
# The launcher's port options, each given a free port.
PORT_OPTIONS = (
    "proxy-port",
    "etcd-port",
    "root-coord-port",
    "proxy-internal-port",
    "query-coord-port",
    "query-node-port",
    "index-coord-port",
    "index-node-port",
    "data-coord-port",
    "data-node-port",
)


def install() -> Path:
    """The ``milvus-server`` command, installed on first use (~58 MB), cached after."""
    done = subprocess.run(
        ["bash", str(INSTALL), sys.executable],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"deploy/milvus/install.sh failed:\n{done.stdout}{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


def _etcd_config(path: Path, client_port: int, peer_port: int) -> Path:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    path.write_text(
        "name: keel-test\n"
        f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: keel-test={peer}\n"
    )
    return path


def _log_tail(data: Path, lines: int = 30) -> str:
    log = data / "logs" / "milvus-stderr.log"
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(uri: str, process: subprocess.Popen[bytes], data: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            code = process.returncode
            raise RuntimeError(f"milvus-server exited with {code}:\n{_log_tail(data)}")
        try:
            client = MilvusClient(uri=uri, timeout=2)
        except MilvusException:
            client = None
        if client is not None:
            try:
                client.list_collections()
                return
            except MilvusException:
                pass
            finally:
                client.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"Milvus at {uri} not ready in {timeout_s} s:\n{_log_tail(data)}")
        time.sleep(0.5)


def _stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        pass
    # The server binary is a child of the launcher: whatever of the group is left goes now.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(grace_s)


@contextmanager
def milvus_server(workdir: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """Run a Milvus server under ``workdir``; yields its URI (``http://127.0.0.1:PORT``)."""
    server = install()
    ports = free_ports(len(PORT_OPTIONS) + 1)
    data = workdir / "data"
    command = [str(server), "--data", str(data)]
    for option, port in zip(PORT_OPTIONS, ports, strict=False):
        command += [f"--{option}", str(port)]
    etcd = _etcd_config(workdir / "etcd.yaml", ports[1], ports[-1])
    env = {**os.environ, "ETCD_CONFIG_PATH": str(etcd)}
    uri = f"http://127.0.0.1:{ports[0]}"
    with (workdir / "milvus-server.log").open("ab") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_ready(uri, process, data, timeout_s)
        yield uri
    finally:
        _stop(process)
