"""A counting tool for crash tests: each run adds one to ``<dir>/<name>.count``.

Registered only when ``test_tools_dir`` is set. A test that kills processes reads the file
afterwards: the count equals the number of times the tool really ran, across processes and
restarts, so a call that ran twice shows.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from keel_tool_gateway.domain.registry import Tool

NAME_PATTERN = r"^[\w-]{1,64}$"


class CountInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Counter name (letters, digits, _ -).")
    sleep_ms: int = Field(default=0, ge=0, le=5000, description="Wait this long first.")


def increment(path: Path) -> int:
    """Add one under an exclusive lock (other threads and processes wait) and replace the file
    atomically, so a reader never sees a half-written number."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            text = path.read_text() if path.exists() else ""
            value = int(text.strip() or "0") + 1
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_text(f"{value}\n")
            os.replace(temporary, path)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return value


def make_count(directory: Path) -> Tool[CountInput]:
    async def run(args: CountInput) -> str:
        if args.sleep_ms:
            await asyncio.sleep(args.sleep_ms / 1000)
        value = await asyncio.to_thread(increment, directory / f"{args.name}.count")
        return str(value)

    return Tool(
        name="count",
        description="Test tool: waits sleep_ms, adds one to the named counter, returns it.",
        input_model=CountInput,
        run=run,
    )
