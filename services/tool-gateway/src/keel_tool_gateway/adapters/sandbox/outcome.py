"""What a finished sandbox run means: a result, or the error the model is told."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keel_tool_gateway.adapters.sandbox.config import SandboxSettings
from keel_tool_gateway.adapters.sandbox.errors import (
    SandboxError,
    SandboxTimeout,
    SandboxUnavailable,
    SandboxViolation,
    SnippetFailed,
)
from keel_tool_gateway.adapters.sandbox.harness import (
    EXIT_MEMORY,
    EXIT_OK,
    EXIT_SETUP,
    EXIT_VIOLATION,
    VIOLATION_MARK,
)

CPU_SIGNALS = frozenset({"SIGKILL", "SIGXCPU"})
TAIL_CHARS = 2000


@dataclass(frozen=True)
class RunReport:
    status: dict[str, Any]
    stdout: bytes
    stderr: bytes
    # '' when the run ended by itself; 'wall', 'stdout' or 'stderr' when it was stopped.
    stopped: str
    duration_s: float


def judge(report: RunReport, settings: SandboxSettings, wall: float) -> SandboxError | None:
    """None when the snippet ran isolated (or isolation was waived) and exited 0."""
    status = report.status
    if "refused" in status:
        return SandboxUnavailable(
            f"sandbox: network isolation is unavailable ({status['refused']}); refusing to run "
            "the snippet (set allow_without_isolation to run without it)"
        )
    if report.stopped == "wall":
        return SandboxTimeout(f"sandbox: killed after {wall:.1f} s wall time")
    if report.stopped:
        return SandboxViolation(
            f"sandbox: output exceeded {settings.max_output_bytes} bytes ({report.stopped})"
        )
    if not status.get("isolated") and not settings.allow_without_isolation:
        # The launcher never confirmed isolation: whatever ran is not trusted as a result.
        return SandboxUnavailable(f"sandbox: the sandbox did not start: {_tail(report.stderr)}")
    if "signal" in status:
        return _signalled(status, settings)
    return _exited(int(status.get("exit", -1)), report, settings)


def _signalled(status: dict[str, Any], settings: SandboxSettings) -> SandboxError:
    name = status["signal"]
    if status.get("oom_killed"):
        return SandboxViolation(
            f"sandbox: memory limit exceeded ({settings.run_memory_mb} MB for the whole run)"
        )
    if name in CPU_SIGNALS and float(status.get("cpu_s", 0)) >= settings.cpu_seconds - 0.5:
        return SandboxViolation(f"sandbox: CPU time limit exceeded ({settings.cpu_seconds} s)")
    if status.get("stopped"):
        return SandboxViolation(f"sandbox: stopped ({status['stopped']})")
    return SandboxViolation(f"sandbox: killed by {name}")


def _exited(code: int, report: RunReport, settings: SandboxSettings) -> SandboxError | None:
    if code == EXIT_OK:
        return None
    if code == EXIT_VIOLATION:
        return SandboxViolation(f"sandbox: {_violation(report.stderr)}")
    if code == EXIT_MEMORY:
        return SandboxViolation(f"sandbox: memory limit exceeded ({settings.memory_mb} MB)")
    if code == EXIT_SETUP or code < 0 or code >= 120:
        return SandboxUnavailable(f"sandbox: the sandbox did not start: {_tail(report.stderr)}")
    return SnippetFailed(
        f"sandbox: the snippet failed (exit status {code}):\n{_tail(report.stderr)}"
    )


def _violation(stderr: bytes) -> str:
    text = stderr.decode(errors="replace")
    for line in reversed(text.splitlines()):
        if line.startswith(VIOLATION_MARK):
            return line[len(VIOLATION_MARK) :]
    return "a limit was exceeded"


def _tail(data: bytes) -> str:
    text = data.decode(errors="replace").strip()
    return text[-TAIL_CHARS:] if text else "(no output)"
