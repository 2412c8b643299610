"""One cgroup per run, with a memory and a pids limit, where the machine lets us make one.

cgroup v1 (the ``memory`` and ``pids`` hierarchies, as on hybrid hosts) is preferred when both
are mounted; else cgroup v2 when the unified root offers both controllers. The gateway makes
the group before the run and removes it after; the launcher joins it before forking, so every
process of the run is counted. Without either (a non-root gateway, a container without a
delegated cgroup) ``make_cgroup`` returns None and the rlimits (RLIMIT_AS per process,
RLIMIT_NPROC per uid) are the only bound; docs/sandbox.md says what that leaves open.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "keel-sandbox"
REMOVE_TRIES = 50


@dataclass(frozen=True)
class RunCgroup:
    """The directories of one run's cgroup (one per v1 hierarchy, or one v2 directory)."""

    directories: tuple[Path, ...]
    version: int

    @property
    def procs_files(self) -> list[str]:
        return [str(directory / "cgroup.procs") for directory in self.directories]

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer acted inside this group during the run."""
        for directory in self.directories:
            name = "memory.oom_control" if self.version == 1 else "memory.events"
            with contextlib.suppress(OSError, ValueError):
                for line in (directory / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        return False

    def remove(self) -> None:
        """Remove the group; the run's processes are gone, but the kernel may lag a moment
        behind the last exit, hence the few retries."""
        for directory in self.directories:
            for _ in range(REMOVE_TRIES):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _v1(name: str, memory_bytes: int, pids: int, parent: str) -> RunCgroup | None:
    memory, pids_root = CGROUP_ROOT / "memory", CGROUP_ROOT / "pids"
    if not (memory / "cgroup.procs").exists() or not (pids_root / "cgroup.procs").exists():
        return None
    made: list[Path] = []
    try:
        for root in (memory, pids_root):
            directory = root / parent / name
            directory.mkdir(parents=True)
            made.append(directory)
        (made[0] / "memory.limit_in_bytes").write_text(str(memory_bytes))
        with contextlib.suppress(OSError):  # absent without swap accounting
            (made[0] / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        (made[1] / "pids.max").write_text(str(pids))
    except OSError:
        RunCgroup(tuple(made), 1).remove()
        return None
    return RunCgroup(tuple(made), 1)


def _v2(name: str, memory_bytes: int, pids: int, parent_name: str) -> RunCgroup | None:
    controllers = CGROUP_ROOT / "cgroup.controllers"
    try:
        if not {"memory", "pids"} <= set(controllers.read_text().split()):
            return None
        parent = CGROUP_ROOT / parent_name
        parent.mkdir(exist_ok=True)
        (CGROUP_ROOT / "cgroup.subtree_control").write_text("+memory +pids")
        (parent / "cgroup.subtree_control").write_text("+memory +pids")
        directory = parent / name
        directory.mkdir()
    except OSError:
        return None
    group = RunCgroup((directory,), 2)
    try:
        (directory / "memory.max").write_text(str(memory_bytes))
        with contextlib.suppress(OSError):
            (directory / "memory.swap.max").write_text("0")
        (directory / "pids.max").write_text(str(pids))
    except OSError:
        group.remove()
        return None
    return group


def make_cgroup(name: str, memory_bytes: int, pids: int, parent: str = PARENT) -> RunCgroup | None:
    """A fresh group for one run with both limits set, or None where none can be made (a
    non-root gateway can make one only where a parent group was delegated to its user)."""
    return _v1(name, memory_bytes, pids, parent) or _v2(name, memory_bytes, pids, parent)
