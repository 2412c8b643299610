"""The command line that starts a sandbox run, per backend.

``unshare``: the launcher makes the namespaces itself (one ``unshare(2)`` call, as
util-linux's ``unshare --net --pid --mount --ipc`` does). ``bwrap``: bubblewrap makes them and
also gives the run a minimal, read-only view of the filesystem; the launcher then only checks.
``none``: no isolation, which the launcher refuses unless ``allow_without_isolation``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from keel_tool_gateway.adapters.sandbox.config import SandboxSettings
from keel_tool_gateway.adapters.sandbox.errors import SandboxUnavailable

Resolved = Literal["unshare", "bwrap", "none"]

_SOURCES = Path(__file__).parent
# The only environment a run gets.
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
PYTHON_FLAGS = ("-I", "-S", "-B")
# World-writable host directories; the unshare backend covers each with an empty tmpfs.
HIDDEN_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")


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


def host_netns() -> int:
    """The gateway's network namespace; the launcher must be in another one. 0: unknown."""
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return 0


def interpreter(settings: SandboxSettings) -> str:
    return os.path.realpath(settings.python or sys.executable)


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]


def build_launch(
    settings: SandboxSettings,
    backend: Resolved,
    scratch: str,
    status_fd: int,
    *,
    python_layer: bool = True,
) -> Launch:
    python = interpreter(settings)
    env = {**BASE_ENV, "HOME": scratch, "TMPDIR": scratch}
    harness_config = {
        "allowed_modules": sorted(settings.allowed_modules),
        "scratch": scratch,
        "uid": settings.run_as_uid,
        "gid": settings.run_as_gid,
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
    launcher_config = {
        "backend": "unshare"
        if backend == "unshare"
        else "verify"
        if backend == "bwrap"
        else "none",
        "host_netns": host_netns(),
        "allow_without_isolation": settings.allow_without_isolation,
        "status_fd": status_fd,
        # Under bwrap the launcher's parent is bwrap, not the gateway: no check there.
        "parent_pid": os.getpid() if backend != "bwrap" else None,
        "wall_s": settings.wall_timeout_s + 2.0,
        "rlimits": _rlimits(settings),
        "scratch": scratch,
        "scratch_mb": settings.scratch_mb,
        "uid": settings.run_as_uid if os.getuid() == 0 else os.getuid(),
        "gid": settings.run_as_gid if os.getuid() == 0 else os.getgid(),
        "hide_dirs": list(HIDDEN_WRITABLE_DIRS),
        "argv": harness_argv,
    }
    launcher = [
        python,
        *PYTHON_FLAGS,
        "-c",
        (_SOURCES / "launcher.py").read_text(),
        json.dumps(launcher_config),
    ]
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
