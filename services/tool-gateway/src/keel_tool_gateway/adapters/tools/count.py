"""Counting tools for crash tests: each effect adds one to ``<dir>/<name>.count``.

Registered only when ``test_tools_dir`` is set. A test that kills processes reads the file
afterwards (``read_count``): the count equals the number of effects that really happened,
across processes and restarts, so an effect made twice (or lost) shows.

``count`` is ``idempotent`` as a real effect with a key should be: the file also lists the
idempotency keys already applied, in the same atomic write, so a run repeated after a crash
(between the effect and the gateway's ledger write) adds nothing. ``count_once`` ignores the
key (``at_most_once``): the gateway alone must keep it from running twice. ``hold_ms`` waits
*after* the effect, holding the run inside that crash window.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from keel_tool_gateway.domain.call_context import current_call
from keel_tool_gateway.domain.registry import Tool

NAME_PATTERN = r"^[\w-]{1,64}$"


class CountInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Counter name (letters, digits, _ -).")
    sleep_ms: int = Field(default=0, ge=0, le=5000, description="Wait this long first.")
    hold_ms: int = Field(default=0, ge=0, le=60_000, description="Wait this long after.")


def read_count(path: Path) -> int:
    """The counter's value: the file's first line (0 when there is no file)."""
    if not path.exists():
        return 0
    first = path.read_text().split("\n", 1)[0].strip()
    return int(first or "0")


def increment(path: Path, key: str = "") -> int:
    """Add one under an exclusive lock (other threads and processes wait) and replace the file
    atomically, so a reader never sees a half-written number. With ``key``: nothing is added
    when that key was applied before (the value is returned as it is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            lines = path.read_text().splitlines() if path.exists() else []
            value = int(lines[0].strip() or "0") if lines else 0
            applied = lines[1:]
            if key and key in applied:
                return value
            value += 1
            if key:
                applied.append(key)
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_text("".join(f"{line}\n" for line in [str(value), *applied]))
            os.replace(temporary, path)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return value


def make_count(directory: Path, *, keyed: bool = True) -> Tool[CountInput]:
    async def run(args: CountInput) -> str:
        if args.sleep_ms:
            await asyncio.sleep(args.sleep_ms / 1000)
        key = current_call().idempotency_key if keyed else ""
        value = await asyncio.to_thread(increment, directory / f"{args.name}.count", key)
        if args.hold_ms:
            await asyncio.sleep(args.hold_ms / 1000)
        return str(value)

    if keyed:
        return Tool(
            name="count",
            description="Test tool: waits sleep_ms, adds one to the named counter (once per "
            "idempotency key), waits hold_ms, returns the count.",
            input_model=CountInput,
            run=run,
            effects="idempotent",
        )
    return Tool(
        name="count_once",
        description="Test tool: as count, but blind to the idempotency key.",
        input_model=CountInput,
        run=run,
        effects="at_most_once",
    )
