"""Settings of the Python sandbox (nested under the tool gateway's settings as ``sandbox``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Pure-computation modules. The harness hands a snippet a copy of each one's public names, minus
# the few that read attributes by name (string.Formatter, functools.update_wrapper). Not here on
# purpose: typing (get_type_hints evaluates strings with real builtins), dataclasses (generates
# code in the harness's globals), operator (attrgetter reads any attribute), pickle, copy.
DEFAULT_ALLOWED_MODULES: tuple[str, ...] = (
    "math",
    "cmath",
    "json",
    "re",
    "statistics",
    "itertools",
    "functools",
    "collections",
    "datetime",
    "decimal",
    "fractions",
    "random",
    "string",
    "textwrap",
    "time",
    "heapq",
    "bisect",
    "unicodedata",
)

Backend = Literal["auto", "unshare", "bwrap", "none"]


class SandboxSettings(BaseModel):
    """Limits and isolation of one snippet run. Env: ``KEEL_TOOL_GATEWAY_SANDBOX__<FIELD>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # RLIMIT_CPU: the kernel kills the snippet after this much CPU time.
    cpu_seconds: int = Field(default=5, ge=1, le=300)
    # RLIMIT_AS: address space of each sandbox process; allocations past it fail (MemoryError).
    memory_mb: int = Field(default=256, ge=64, le=16384)
    # RLIMIT_NPROC of the sandbox uid, and the pids limit of the run's cgroup (plus the
    # launcher and the harness) where there is one.
    max_processes: int = Field(default=16, ge=1, le=4096)
    # RLIMIT_FSIZE: the largest file the snippet may write.
    max_file_mb: int = Field(default=8, ge=0, le=4096)
    # Size of the scratch directory (a tmpfs of its own under the unshare backend).
    scratch_mb: int = Field(default=32, ge=1, le=4096)
    # Files and directories the scratch tmpfs can hold (its nr_inodes): many small files
    # cannot exhaust the gateway's memory either.
    scratch_inodes: int = Field(default=4096, ge=64, le=1_000_000)
    # The whole run's memory (every process of it together, page cache of the scratch tmpfs
    # included), enforced by the run's cgroup where the machine offers cgroups.
    run_memory_mb: int = Field(default=512, ge=64, le=65536)
    # The cgroup under which each run gets its own group (in every hierarchy used): a
    # non-root gateway needs this subtree delegated to its user (systemd Delegate=yes, a
    # container runtime's cgroup namespace).
    cgroup_parent: str = Field(default="keel-sandbox", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # RLIMIT_NOFILE: open descriptors, the interpreter's own included.
    max_open_files: int = Field(default=64, ge=16, le=4096)
    # The snippet's whole process group is killed after this long; also the largest time-out
    # a caller may ask for.
    wall_timeout_s: float = Field(default=10.0, gt=0, le=600)
    # Stdout and stderr each; past it the run is killed and reported as an error.
    max_output_bytes: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024)
    # Top-level modules a snippet may import (their submodules too).
    allowed_modules: tuple[str, ...] = DEFAULT_ALLOWED_MODULES
    # auto: unshare, the backend the escape suite proves (bwrap is opt-in: when run for real it
    # failed seven of the OS-layer probes; see docs/sandbox.md). none: no isolation (refused
    # unless allowed below).
    backend: Backend = "auto"
    # Run without a network namespace when none can be made. Never in production.
    allow_without_isolation: bool = False
    # The snippet runs as this uid/gid (65534: nobody): for real when the gateway is root,
    # inside its user namespace (mapped onto the gateway's ids) when it is not.
    run_as_uid: int = Field(default=65534, ge=1)
    run_as_gid: int = Field(default=65534, ge=1)
    # Scratch directories are made here (None: the system's temporary directory).
    scratch_root: str | None = None
    # The interpreter that runs snippets (None: the gateway's own, with -I -S: stdlib only).
    python: str | None = None
    # Snippets running at once in this process; more wait their turn.
    max_concurrent: int = Field(default=4, ge=1, le=256)
