"""The command line that starts a sandbox run, per backend.

``unshare``: the box (``box.py``): the launcher makes the namespaces itself, pivots into a
minimal root, drops every privilege and installs the seccomp filter. ``bwrap``: bubblewrap
makes the namespaces and the root; the launcher only checks, and still sets NO_NEW_PRIVS and
the seccomp filter. ``none``: no isolation, which the launcher refuses unless
``allow_without_isolation``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from keel_tool_gateway.adapters.sandbox.box import (
    PYTHON_FLAGS,
    BoxSpec,
    Launch,
    box_launch,
    launcher_config,
    launcher_source,
)
from keel_tool_gateway.adapters.sandbox.config import SandboxSettings
from keel_tool_gateway.adapters.sandbox.errors import SandboxUnavailable

Resolved = Literal["unshare", "bwrap", "none"]

_SOURCES = Path(__file__).parent
# The only environment a run gets.
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
MB = 1024 * 1024


def resolve_backend(settings: SandboxSettings) -> Resolved:
    """The backend to use; raises SandboxUnavailable for bwrap when it is not installed."""
    if settings.backend == "auto":
        return "unshare"
    if settings.backend == "bwrap" and not shutil.which("bwrap"):
        raise SandboxUnavailable(
            "sandbox: the bwrap backend is configured but bwrap is not on PATH; "
            "refusing to run the snippet"
        )
    return settings.backend


def interpreter(settings: SandboxSettings) -> str:
    return os.path.realpath(settings.python or sys.executable)


def run_ids(settings: SandboxSettings) -> tuple[int, int]:
    """The uid/gid a snippet runs as: ``run_as_*`` for a root gateway; for a non-root one the
    same ids *inside* its user namespace (mapped onto the gateway's own ids outside)."""
    return settings.run_as_uid, settings.run_as_gid


def build_launch(
    settings: SandboxSettings,
    backend: Resolved,
    scratch: str,
    status_fd: int,
    *,
    python_layer: bool = True,
    ro_binds: Sequence[str] = (),
    cgroup_procs: Sequence[str] = (),
) -> Launch:
    python = interpreter(settings)
    env = {**BASE_ENV, "HOME": scratch, "TMPDIR": scratch}
    uid, gid = run_ids(settings)
    harness_config = {
        "allowed_modules": sorted(settings.allowed_modules),
        "scratch": scratch,
        "uid": uid,
        "gid": gid,
        "max_processes": settings.max_processes,
        "python_layer": python_layer,
    }
    harness_argv = [
        python,
        *PYTHON_FLAGS,
        "-c",
        (_SOURCES / "harness.py").read_text(),
        json.dumps(harness_config),
    ]
    spec = BoxSpec(
        argv=harness_argv,
        scratch=scratch,
        uid=uid,
        gid=gid,
        env=env,
        scratch_bytes=settings.scratch_mb * MB,
        scratch_inodes=settings.scratch_inodes,
        ro_binds=ro_binds,
        rlimits=_rlimits(settings),
        cgroup_procs=cgroup_procs,
        wall_s=settings.wall_timeout_s + 2.0,
    )
    if backend == "unshare":
        return box_launch(
            spec,
            status_fd,
            python=python,
            allow_without_isolation=settings.allow_without_isolation,
        )
    config = launcher_config(
        spec,
        status_fd,
        backend="verify" if backend == "bwrap" else "none",
        allow_without_isolation=settings.allow_without_isolation,
        # Under bwrap the launcher's parent is bwrap, not the gateway: no check there.
        parent_pid=None if backend == "bwrap" else os.getpid(),
    )
    launcher = [python, *PYTHON_FLAGS, "-c", launcher_source(), json.dumps(config)]
    if backend == "bwrap":
        bwrap = shutil.which("bwrap") or "bwrap"
        launcher = [bwrap, *_bwrap_options(python, scratch, env), "--", *launcher]
    return Launch(launcher, env)


def _rlimits(settings: SandboxSettings) -> dict[str, int]:
    mb = 1024 * 1024
    return {
        "RLIMIT_CPU": settings.cpu_seconds,
        "RLIMIT_AS": settings.memory_mb * mb,
        "RLIMIT_FSIZE": settings.max_file_mb * mb,
        "RLIMIT_NOFILE": settings.max_open_files,
        "RLIMIT_CORE": 0,
    }


def _bwrap_options(python: str, scratch: str, env: dict[str, str]) -> list[str]:
    """New namespaces, the system's programs and libraries read-only, nothing else of the host:
    no /etc, /home, /root, /var or the gateway's files; /tmp empty, the scratch dir writable."""
    prefix = str(Path(python).parent.parent)
    options = [
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    if os.getuid() != 0:
        options.append("--unshare-user")
    for path in ("/lib", "/lib64", "/bin", "/etc/localtime", prefix):
        options += ["--ro-bind-try", path, path]
    options += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    options += ["--bind", scratch, scratch, "--chdir", scratch, "--clearenv"]
    for key, value in env.items():
        options += ["--setenv", key, value]
    return options
