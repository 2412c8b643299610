"""What `make run` does (`keel dev up --demo`): its own broker and services, on free ports.

It must not use the session's broker: its agent loop would join the session stack's consumer
groups, take partitions away from it mid-test and run (or hand back) other tests' records.
"""

from __future__ import annotations

import os
import signal
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
    done = _run_to_the_end(
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
        env,
        timeout_s=180,
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


def processes_mentioning(needle: str) -> list[int]:
    """Live processes whose command line or environment contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle.encode() in seen:
            found.append(int(entry.name))
    return found


def test_ctrl_c_with_the_terminal_gone_stops_everything(tmp_path: Path) -> None:
    """`make run | tee run.log`, then Ctrl-C: tee dies first, and the teardown's prints hit a
    closed pipe. The services and the broker must stop anyway."""
    kafka_port = free_port()
    unset = ("KEEL_KAFKA_BOOTSTRAP", "KEEL_LLM_GATEWAY_PROVIDER")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env |= {
        "KEEL_KAFKA_PORT": str(kafka_port),
        "KEEL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "KEEL_KAFKA_DATA_DIR": str(tmp_path / "kafka"),
    }
    command = [sys.executable, "-m", "keel_cli", "dev", "up", "--free-ports"]
    up = subprocess.Popen(
        [*command, "--run-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert up.stdout is not None
    try:
        for line in up.stdout:
            if "Press Ctrl-C" in line:
                break
        else:
            raise AssertionError("keel dev up ended before it was running")
        ours = f"127.0.0.1:{kafka_port}"
        running = processes_mentioning(ours)
        assert len(running) >= 7, "six services and the broker"
        up.stdout.close()  # the reader goes away, as tee does on Ctrl-C
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=120) is not None
        assert processes_mentioning(ours) == []
    finally:
        if up.poll() is None:
            up.kill()


def _run_to_the_end(
    argv: list[str], env: dict[str, str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run``, except that past the time-out the whole process group gets Ctrl-C
    (the stack's own teardown stops its services and broker), then SIGKILL: a slow run must
    not leave a broker and six services behind for the rest of the suite."""
    process = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
        raise AssertionError(f"keel dev up did not finish in {timeout_s:g}s:\n{out}{err}") from None
    return subprocess.CompletedProcess(argv, process.returncode, out, err)
