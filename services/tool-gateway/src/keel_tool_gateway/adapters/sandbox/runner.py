"""Runs one snippet in the sandbox: scratch directory, launcher process, capped output, the
wall clock, and the kill of everything the run started."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from keel_tool_gateway.adapters.sandbox.backends import MB, build_launch, resolve_backend
from keel_tool_gateway.adapters.sandbox.cgroups import RunCgroup, make_cgroup
from keel_tool_gateway.adapters.sandbox.config import SandboxSettings
from keel_tool_gateway.adapters.sandbox.errors import (
    SandboxError,
    SandboxTimeout,
    SandboxUnavailable,
    SandboxViolation,
)
from keel_tool_gateway.adapters.sandbox.outcome import RunReport, judge

log = logging.getLogger(__name__)

# Time the launcher gets to kill its child after SIGTERM before the whole group is killed.
TERMINATE_GRACE_S = 1.0
STDERR_TAIL_BYTES = 4096


@dataclass(frozen=True)
class SandboxResult:
    """A run that finished with exit status 0."""

    stdout: str
    stderr: str
    exit_status: int
    duration_s: float
    cpu_s: float
    isolated: bool


class _OutputExceeded(Exception):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.stream = stream


class _Capture:
    """Bytes of one stream, up to ``cap``; past it the run is stopped."""

    def __init__(self, name: str, cap: int) -> None:
        self.name = name
        self.cap = cap
        self.data = bytearray()

    async def pump(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            self.data += chunk
            if len(self.data) > self.cap:
                raise _OutputExceeded(self.name)


class Sandbox:
    """Runs Python snippets under ``settings``' limits; at most ``max_concurrent`` at once.

    ``python_layer=False`` turns the in-interpreter checks off. It exists only so tests can
    show the operating-system layers hold on their own; the python tool never sets it.
    ``ro_binds``: host paths the snippet may read (same path inside the box), for data a
    deployment wants to hand every run; none by default.
    """

    # Processes of a run besides the snippet's own: the launcher and the harness.
    OWN_PROCESSES = 2

    def __init__(
        self,
        settings: SandboxSettings,
        *,
        python_layer: bool = True,
        ro_binds: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self._python_layer = python_layer
        self._ro_binds = ro_binds
        self._slots = asyncio.Semaphore(settings.max_concurrent)

    async def run(
        self, code: str, stdin: str = "", timeout_s: float | None = None
    ) -> SandboxResult:
        """The snippet's output; raises a SandboxError (a ToolError) on any violation."""
        wall = self.settings.wall_timeout_s if timeout_s is None else timeout_s
        if not 0 < wall <= self.settings.wall_timeout_s:
            raise SandboxError(
                f"sandbox: timeout_s must be above 0 and at most {self.settings.wall_timeout_s:g}"
            )
        backend = resolve_backend(self.settings)
        if backend == "none" and not self.settings.allow_without_isolation:
            raise SandboxUnavailable(
                "sandbox: isolation is switched off (backend none); refusing to run the "
                "snippet (set allow_without_isolation to run without it)"
            )
        async with self._slots:
            scratch = self._make_scratch()
            try:
                return await self._run_in(scratch, backend, code, stdin, wall)
            finally:
                await asyncio.to_thread(shutil.rmtree, scratch, True)

    def _make_scratch(self) -> str:
        scratch = os.path.realpath(
            tempfile.mkdtemp(prefix="keel-sbx-", dir=self.settings.scratch_root)
        )
        if os.getuid() == 0:
            os.chown(scratch, self.settings.run_as_uid, self.settings.run_as_gid)
        os.chmod(scratch, 0o700)
        return scratch

    async def _run_in(
        self, scratch: str, backend: Any, code: str, stdin: str, wall: float
    ) -> SandboxResult:
        cgroup = None
        if backend == "unshare":
            cgroup = await asyncio.to_thread(
                make_cgroup,
                os.path.basename(scratch),
                self.settings.run_memory_mb * MB,
                self.settings.max_processes + self.OWN_PROCESSES,
                self.settings.cgroup_parent,
            )
        try:
            return await self._launch(scratch, backend, code, stdin, wall, cgroup)
        finally:
            if cgroup is not None:
                await asyncio.to_thread(cgroup.remove)

    async def _launch(
        self,
        scratch: str,
        backend: Any,
        code: str,
        stdin: str,
        wall: float,
        cgroup: RunCgroup | None,
    ) -> SandboxResult:
        status_r, status_w = os.pipe()
        try:
            launch = build_launch(
                self.settings,
                backend,
                scratch,
                status_w,
                python_layer=self._python_layer,
                ro_binds=self._ro_binds,
                cgroup_procs=cgroup.procs_files if cgroup else (),
            )
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                *launch.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=launch.env,
                cwd=scratch,
                start_new_session=True,
                pass_fds=(status_w,),
            )
        except OSError as exc:
            os.close(status_r)
            raise SandboxUnavailable(f"sandbox: cannot start the sandbox: {exc}") from exc
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        stdout = _Capture("stdout", self.settings.max_output_bytes)
        stderr = _Capture("stderr", self.settings.max_output_bytes)
        stopped = ""
        try:
            stopped = await self._communicate(process, stdout, stderr, code, stdin, wall)
        finally:
            await _terminate(process)
            await _drain(process)
            status = _read_status(status_r)
        if cgroup is not None and cgroup.oom_killed():
            status["oom_killed"] = True
        report = RunReport(
            status=status,
            stdout=bytes(stdout.data),
            stderr=bytes(stderr.data[-STDERR_TAIL_BYTES:]),
            stopped=stopped,
            duration_s=time.monotonic() - started,
        )
        verdict = judge(report, self.settings, wall)
        if verdict is not None:
            log.info("sandbox run refused or failed: %s", verdict)
            raise verdict
        return SandboxResult(
            stdout=report.stdout.decode(errors="replace"),
            stderr=report.stderr.decode(errors="replace"),
            exit_status=0,
            duration_s=report.duration_s,
            cpu_s=float(status.get("cpu_s", 0.0)),
            isolated=bool(status.get("isolated")),
        )

    async def _communicate(
        self,
        process: asyncio.subprocess.Process,
        stdout: _Capture,
        stderr: _Capture,
        code: str,
        stdin: str,
        wall: float,
    ) -> str:
        """'' when the run ended by itself; else why it was stopped: 'wall' or a stream name."""
        payload = json.dumps({"code": code, "stdin": stdin}).encode()
        tasks = [
            asyncio.ensure_future(_feed(process, payload)),
            asyncio.ensure_future(stdout.pump(process.stdout)),
            asyncio.ensure_future(stderr.pump(process.stderr)),
        ]
        try:
            async with asyncio.timeout(wall):
                await asyncio.gather(*tasks)
                await process.wait()
        except TimeoutError:
            return "wall"
        except _OutputExceeded as exc:
            return exc.stream
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return ""


async def _feed(process: asyncio.subprocess.Process, payload: bytes) -> None:
    if process.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.write(payload)
        await process.stdin.drain()
        process.stdin.close()


async def _terminate(process: asyncio.subprocess.Process) -> None:
    """Ask the launcher to kill its child (which takes the child's PID namespace with it), then
    kill the whole process group, whatever happened."""
    try:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(process.wait()), TERMINATE_GRACE_S)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if process.returncode is None:
            await asyncio.shield(process.wait())


async def _drain(process: asyncio.subprocess.Process) -> None:
    """Read the pipes to their end (everything holding them is dead by now), so their
    transports close instead of lingering."""
    for stream in (process.stdout, process.stderr):
        if stream is None:
            continue
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(TERMINATE_GRACE_S):
                while await stream.read(65536):
                    pass


def _read_status(fd: int) -> dict[str, Any]:
    """The launcher's JSON lines, merged (later fields win). Its writer is gone by now."""
    chunks = []
    try:
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    merged: dict[str, Any] = {}
    for line in b"".join(chunks).splitlines():
        with contextlib.suppress(ValueError):
            merged.update(json.loads(line))
    return merged


__all__ = ["Sandbox", "SandboxResult", "SandboxError", "SandboxTimeout", "SandboxViolation"]
