"""What `make run` does (`keel dev up --demo`): its own broker and services, on free ports.

It must not use the session's broker: its agent loop would join the session stack's consumer
groups, take partitions away from it mid-test and run (or hand back) other tests' records.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keel_cli.stack import free_port

pytestmark = pytest.mark.stack


def test_dev_up_runs_the_demo_task_end_to_end(tmp_path: Path) -> None:
    unset = ("KEEL_KAFKA_BOOTSTRAP", "KEEL_LLM_GATEWAY_PROVIDER")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env |= {
        "KEEL_KAFKA_PORT": str(free_port()),
        "KEEL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "KEEL_KAFKA_DATA_DIR": str(tmp_path / "kafka"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keel_cli",
            "dev",
            "up",
            "--demo",
            "--once",
            "--free-ports",
            "--run-dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "starting the local broker" in out
    assert "all services healthy" in out
    assert "← calculator ok: 395" in out
    assert "offline Qwen2.5-Coder" in out, "make run thinks with the offline model by default"
    final = next(line for line in out.splitlines() if line.startswith("✓ final answer"))
    assert "395" in final
    assert "keel.audit" in out
    assert "services that did not exit cleanly" not in out
    assert "• stopping Kafka" in out
    assert out.rstrip().endswith("• stopped.")
