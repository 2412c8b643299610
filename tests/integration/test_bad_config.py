"""Bad configuration stops a service with one clear line and exit code 2, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from keel_cli.stack import free_port


def run_service(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_malformed_policy_file_names_its_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrules:\n  - id: a\n    tool: x\n    decision: perhaps\n")
    done = run_service("keel_policy", {"KEEL_POLICY_POLICY_FILE": str(policy)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"policy: error: {policy}:5: rules.0.decision")


def test_an_unreachable_broker_is_one_clear_message() -> None:
    done = run_service(
        "keel_policy",
        {
            "KEEL_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
            "KEEL_KAFKA_CONNECT_TIMEOUT_S": "2",
            "KEEL_POLICY_GRPC_PORT": str(free_port()),
            "KEEL_POLICY_METRICS_PORT": str(free_port()),
        },
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "policy: error: cannot reach Kafka at 127.0.0.1:" in done.stderr


def test_invalid_settings_are_reported_not_raised() -> None:
    done = run_service("keel_policy", {"KEEL_POLICY_GRPC_PORT": "not-a-port"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "policy: error: invalid configuration" in done.stderr
    assert "grpc_port" in done.stderr
