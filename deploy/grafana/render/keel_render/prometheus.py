"""A real Prometheus for the snapshot: Debian's binary (deploy/prometheus/install.sh), the repo's
scrape config with the stack's free ports put in, and the repo's alert rules, in a scratch
directory that goes away with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

CACHE = Path(os.environ.get("KEEL_CACHE_DIR", Path.home() / ".cache" / "keel")) / "prometheus"


def find_binary(name: str) -> Path | None:
    """On PATH, else where deploy/prometheus/install.sh unpacks it."""
    found = shutil.which(name)
    if found:
        return Path(found)
    cached = CACHE / "usr" / "bin" / name
    return cached if cached.is_file() else None


def scrape_config(source: Path, ports: dict[str, int], interval_s: float) -> dict[str, object]:
    """The repo's prometheus.yml with each service's target moved to its port in ``ports``
    (service name -> metrics port) and a shorter interval, so minutes of traffic draw lines."""
    config: dict[str, object] = yaml.safe_load(source.read_text())
    every = f"{interval_s:g}s"
    config["global"] = {"scrape_interval": every, "evaluation_interval": every}
    jobs = config["scrape_configs"]
    assert isinstance(jobs, list)
    for job in jobs:
        for static in job["static_configs"]:
            service = static["labels"]["service"]
            static["targets"] = [f"127.0.0.1:{ports[service]}"]
    return config


class PrometheusServer:
    def __init__(self, binary: Path, port: int) -> None:
        self._binary = binary
        self.port = port
        self._dir = Path(tempfile.mkdtemp(prefix="keel-prometheus-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: dict[str, object], rules: Path, timeout_s: float = 30) -> None:
        shutil.copy(rules, self._dir / rules.name)
        (self._dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        log = (self._dir / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                str(self._binary),
                f"--config.file={self._dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("prometheus exited:\n" + self.log_tail())
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("prometheus not ready:\n" + self.log_tail())

    def log_tail(self) -> str:
        path = self._dir / "prometheus.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)
