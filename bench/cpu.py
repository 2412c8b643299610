"""CPU time of processes and their descendants, read from /proc (Linux), for the benches that
print CPU per step beside latency."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, own CPU seconds including reaped children) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return int(fields[1]), ticks / CLOCK_TICKS


def tree_cpu_seconds(roots: list[int]) -> float:
    """User + system CPU of ``roots`` and all their descendants, from /proc (Linux): a service
    may run helpers of its own (Milvus Lite, the sandbox), and their time is the step's too."""
    stats = {
        int(p.name): _proc_stat(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()
    }
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        if stat is not None:
            children.setdefault(stat[0], []).append(pid)
    total, todo, seen = 0.0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        stat = stats.get(pid) or _proc_stat(pid)
        if stat is not None:
            total += stat[1]
        todo += children.get(pid, [])
    return total


def broker_pid(credentials: Path | None) -> int | None:
    """The pid of the broker ``local_kafka`` started (its data directory holds the credentials
    and broker.pid); None for a broker from ``KEEL_KAFKA_BOOTSTRAP``, whose CPU is not ours to
    read."""
    if credentials is None:
        return None
    try:
        pid = int((credentials.parent / "broker.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU of the process alone (not its children, live or reaped)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
