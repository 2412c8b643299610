"""What `make run` does (`keel dev up --demo`), on the test broker and free ports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keel_core.settings import KafkaSettings

pytestmark = pytest.mark.stack


def test_dev_up_runs_the_demo_task_end_to_end(kafka: KafkaSettings, tmp_path: Path) -> None:
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
        env={**os.environ, "KEEL_KAFKA_BOOTSTRAP": kafka.bootstrap},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "all services healthy" in out
    assert "← calculator ok: 395" in out
    assert "✓ final answer (from keel.results): The answer is 395." in out
    assert "keel.audit" in out
    assert "services that did not exit cleanly" not in out
    assert out.rstrip().endswith("• stopped.")
