"""Container fixtures for tests/deploy: podman (installed if missing), the images `make images`
builds, podman's Docker-compatible API socket and the Docker Compose v2 client.

Everything slow is cached outside git (Debian base tarballs, wheels, the Kafka jars, podman's
layer store, the compose binary), so a warm run only starts containers. The podman API service
is this session's own, on a socket in a temporary directory, and is stopped at the end; the
process environment is left alone (``DOCKER_HOST`` is passed to the compose client only), so
the root conftest's broker choice does not change.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PODMAN = ["bash", str(REPO / "deploy/podman/podman.sh")]
IMAGE = "localhost/keel:dev"
KAFKA_IMAGE = "localhost/keel-kafka:4.1.1"


def podman(*args: str, check: bool = True, timeout: float = 120) -> str:
    """Run podman with the repo's settings; its stdout."""
    done = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


@pytest.fixture(scope="session")
def podman_ready() -> None:
    """podman, runc and mmdebstrap, installed by the repo's script when apt can (CI, our
    machines); skipped elsewhere with the reason."""
    done = subprocess.run(
        ["bash", str(REPO / "deploy/podman/install.sh")], capture_output=True, text=True
    )
    if done.returncode != 0 or not shutil.which("podman"):
        pytest.skip(f"podman is not installed and could not be: {done.stderr[-500:]}")


@dataclass(frozen=True)
class BuiltImages:
    report: str  # what `make images` printed: each image's size and build time


@pytest.fixture(scope="session")
def images(podman_ready: None) -> BuiltImages:
    """Both images, built (or found cached) exactly as `make images` builds them."""
    done = subprocess.run(
        ["bash", str(REPO / "deploy/podman/images.sh")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "KEEL_ENGINE": "podman", "PYTHON": str(REPO / ".venv/bin/python")},
        timeout=1500,
    )
    assert done.returncode == 0, f"make images failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    print(done.stdout)
    return BuiltImages(done.stdout)


def _ping(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(2)
            client.connect(str(path))
            client.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            return b"OK" in client.recv(4096)
    except OSError:
        return False


@pytest.fixture(scope="session")
def docker_host(podman_ready: None) -> Iterator[str]:
    """``podman system service`` on a socket of our own: the Docker API compose talks to."""
    directory = Path(tempfile.mkdtemp(prefix="keel-podman-api-"))
    sock = directory / "podman.sock"
    with (directory / "service.log").open("wb") as log:
        service = subprocess.Popen(
            [*PODMAN, "system", "service", "--time=0", f"unix://{sock}"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        # Nothing to await: the service listens when it listens; poll its /_ping.
        while not _ping(sock):
            assert service.poll() is None, (directory / "service.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "podman system service did not answer"
            time.sleep(0.1)
        yield f"unix://{sock}"
    finally:
        # The whole process group (its own session): nothing of the service outlives the run.
        os.killpg(service.pid, signal.SIGTERM)
        try:
            service.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def compose_bin(podman_ready: None) -> str:
    """Docker Compose v2 (built once from the Go module proxy into the cache)."""
    done = subprocess.run(
        ["bash", str(REPO / "deploy/podman/compose.sh")],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    if done.returncode != 0:
        pytest.skip(f"no docker compose client: {done.stderr[-500:]}")
    return done.stdout.strip()
