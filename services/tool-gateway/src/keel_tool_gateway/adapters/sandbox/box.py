"""The box: any argv in its own namespaces, uid and minimal root, with no network.

Nothing here knows about Python snippets: the sandbox uses it for the harness, and anything
else that must run untrusted code (a tool server over stdio) can ask for the same launch with
its own argv and directories. The launcher (``launcher.py``, with ``rootfs.py`` and
``seccomp.py``) does the work; this module only writes its configuration.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

_SOURCES = Path(__file__).parent
LAUNCHER_PARTS = ("seccomp.py", "rootfs.py", "launcher.py")
PYTHON_FLAGS = ("-I", "-S", "-B")
CONFIG_ENV = "KEEL_BOX_CONFIG"  # the launcher's (launcher.CONFIG_ENV; it imports nothing)
# What the dynamic loader and the C library need, whatever the program: the system's
# libraries (``/lib`` and friends are symlinks into ``/usr`` on merged-/usr systems, and are
# recreated as symlinks). No /usr/bin, /etc, /home, /root, /var, /run or /tmp of the host.
SYSTEM_RO_PATHS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32")
# Installed packages inside those trees, hidden by an empty tmpfs: the standard library is what
# a boxed interpreter may read, not the gateway's (or the OS's) third-party code.
PACKAGE_DIRS = ("lib/python3*/site-packages", "lib/python3*/dist-packages")
SYSTEM_PACKAGE_DIRS = ("/usr/lib/python3*/dist-packages", "/usr/lib/python3*/site-packages")


def package_masks(prefix: str) -> list[str]:
    """The package directories under ``prefix`` and the system's Python package dirs."""
    patterns = [os.path.join(prefix, p) for p in PACKAGE_DIRS] + list(SYSTEM_PACKAGE_DIRS)
    return sorted({path for pattern in patterns for path in glob.glob(pattern)})


@dataclass(frozen=True)
class Launch:
    """What to spawn: argv and environment of the launcher (or bwrap)."""

    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class BoxSpec:
    """One program to run boxed.

    ``scratch`` is a host directory the caller made (and removes): inside the box the same
    path is a fresh tmpfs of ``scratch_bytes`` and ``scratch_inodes``, the working directory.
    ``ro_binds``/``rw_binds`` are host paths shown at the same path inside (read-only, or
    writable); everything else of the host is absent. ``network`` is ``"none"``: a network
    namespace with only a loopback interface, which is down, and no socket syscall at all.

    For a program that is not a snippet (a stdio tool server): ``mask_packages=False`` keeps
    the interpreter's installed packages visible (the server needs them); ``seccomp_allow``
    lets named syscalls of the filter's table through (``socketpair``, for asyncio);
    ``cwd`` is the working directory inside (default: the scratch directory); ``wall_s`` 0
    means no wall clock. ``proxy_socket``: the box's loopback is brought up and the launcher
    relays each connection to ``127.0.0.1:proxy_port`` to that unix socket (the gateway's
    proxy, which the program cannot see); ``socket_domains`` lets ``socket`` through for
    those address families (AF_INET, to reach the forwarder).
    """

    argv: Sequence[str]
    scratch: str
    uid: int
    gid: int
    env: Mapping[str, str] = field(default_factory=dict)
    scratch_bytes: int = 32 * 1024 * 1024
    scratch_inodes: int = 4096
    ro_binds: Sequence[str] = ()
    rw_binds: Sequence[str] = ()
    network: Literal["none"] = "none"
    rlimits: Mapping[str, int] = field(default_factory=dict)
    cgroup_procs: Sequence[str] = ()
    masks: Sequence[str] = ()
    wall_s: float = 60.0
    mask_packages: bool = True
    seccomp_allow: Sequence[str] = ()
    cwd: str | None = None
    socket_domains: Sequence[int] = ()
    proxy_socket: str | None = None
    proxy_port: int = 3128


def launcher_source() -> str:
    """The launcher's program text: its two helper modules, then itself."""
    return "\n\n".join((_SOURCES / part).read_text() for part in LAUNCHER_PARTS)


def host_netns() -> int:
    """The gateway's network namespace; the launcher must be in another one. 0: unknown."""
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return 0


def interpreter_prefix(python: str) -> str:
    """The installation an interpreter needs at start-up (``<prefix>/bin/python3.x``)."""
    return str(Path(python).parent.parent)


def launcher_config(
    spec: BoxSpec,
    status_fd: int | None,
    *,
    backend: Literal["unshare", "verify", "none"] = "unshare",
    allow_without_isolation: bool = False,
    parent_pid: int | None = None,
) -> dict[str, object]:
    """The launcher's JSON configuration for ``spec``."""
    return {
        "backend": backend,
        "host_netns": host_netns(),
        "allow_without_isolation": allow_without_isolation,
        "status_fd": status_fd,
        "parent_pid": parent_pid,
        "wall_s": spec.wall_s,
        "rlimits": dict(spec.rlimits),
        "scratch": spec.scratch,
        "new_root": spec.scratch,
        "scratch_bytes": spec.scratch_bytes,
        "scratch_inodes": spec.scratch_inodes,
        "ro_binds": list(dict.fromkeys(spec.ro_binds)),
        "rw_binds": list(dict.fromkeys(spec.rw_binds)),
        "masks": list(dict.fromkeys(spec.masks)),
        "uid": spec.uid,
        "gid": spec.gid,
        "cgroup_procs": list(spec.cgroup_procs),
        "env": dict(spec.env),
        "argv": list(spec.argv),
        "seccomp_allow": list(spec.seccomp_allow),
        "socket_domains": list(spec.socket_domains),
        "cwd": spec.cwd,
        "proxy": (
            {"unix": spec.proxy_socket, "port": spec.proxy_port} if spec.proxy_socket else None
        ),
    }


def box_launch(
    spec: BoxSpec,
    status_fd: int | None,
    *,
    python: str | None = None,
    allow_without_isolation: bool = False,
    config_in_env: bool = False,
) -> Launch:
    """The command that runs ``spec.argv`` boxed (``unshare`` backend).

    The launcher runs on ``python`` (default: this interpreter) as the caller's user and
    writes JSON lines to ``status_fd`` (``isolated``/``problem``, then ``exit`` or ``signal``
    with ``cpu_s``); pass that descriptor on to the child (``pass_fds``). The launched
    program gets the interpreter's prefix and the system libraries read-only besides
    ``spec.ro_binds``, so a Python program can start without more; installed packages in
    them are masked (a program that needs some binds its own directory) unless
    ``spec.mask_packages`` is false.

    ``status_fd`` None: no status lines (the spawner talks to the program over its inherited
    stdin/stdout; a refusal is written to stderr). ``config_in_env``: the configuration goes
    in the launcher's environment (``launcher.CONFIG_ENV``), not on its command line, which
    every user of the host can read: a program's ``env`` may hold its credentials.
    """
    python = os.path.realpath(python or sys.executable)
    prefix = interpreter_prefix(python)
    ro = [prefix, *SYSTEM_RO_PATHS, *spec.ro_binds]
    masks = [*(package_masks(prefix) if spec.mask_packages else ()), *spec.masks]
    boxed = BoxSpec(**{**spec.__dict__, "ro_binds": ro, "masks": masks})
    config = launcher_config(
        boxed,
        status_fd,
        allow_without_isolation=allow_without_isolation,
        parent_pid=os.getpid(),
    )
    argv = [python, *PYTHON_FLAGS, "-c", launcher_source()]
    if config_in_env:
        return Launch(argv, {CONFIG_ENV: json.dumps(config)})
    return Launch([*argv, json.dumps(config)], dict(spec.env))
