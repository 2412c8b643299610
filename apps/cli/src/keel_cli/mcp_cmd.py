"""``keel mcp pins|accept``: review and accept changed MCP tool descriptions.

The tool gateway pins each MCP tool by the hash of its name, description and input schema at
its first mount, in ``<pin_dir>/<server>.json``; a tool whose hash later changes is refused
and its new hash and description are kept under ``pending`` (docs/mcp.md). ``keel mcp pins``
shows what is pinned and what is waiting; ``keel mcp accept SERVER [TOOL]`` accepts the
pending change (every pending tool of the server without TOOL). The gateway mounts an
accepted tool at its next check of the server (within one check interval) and audits the
acceptance as ``mcp.tool.accepted`` with the name given by ``--by``.

The file is the gateway's format; both writers take an exclusive ``flock`` on
``<server>.json.lock`` and replace the file atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import getpass
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keel_contracts.errors import InvalidArgument, NotFound


def add_mcp_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mcp = sub.add_parser("mcp", help="MCP tool pins: show, accept a changed description")
    mcp_sub = mcp.add_subparsers(dest="mcp_command", required=True)
    pins = mcp_sub.add_parser("pins", help="pinned tools and refused changes of a server")
    accept = mcp_sub.add_parser("accept", help="accept a server's changed tool description(s)")
    for cmd in (pins, accept):
        cmd.add_argument("server")
        cmd.add_argument(
            "--pin-dir",
            required=True,
            type=Path,
            help="the gateway's KEEL_TOOL_GATEWAY_MCP__PIN_DIR",
        )
    accept.add_argument("tool", nargs="?", default=None, help="default: every pending tool")
    accept.add_argument("--by", default="", help="who accepts (audited); default: $USER")


async def mcp_command(args: argparse.Namespace) -> int:
    path = pin_file(args.pin_dir, args.server)
    if args.mcp_command == "pins":
        print(describe(json.loads(path.read_text())))
        return 0
    accepted = accept(path, args.tool, args.by or getpass.getuser())
    print(f"accepted {', '.join(accepted)} of MCP server {args.server}")
    return 0


def pin_file(pin_dir: Path, server: str) -> Path:
    if not server.replace("-", "").replace("_", "").isalnum():
        raise InvalidArgument(f"not an MCP server name: {server!r}")
    path = pin_dir / f"{server}.json"
    if not path.exists():
        raise NotFound(f"no pins for MCP server {server!r} in {pin_dir}")
    return path


def accept(path: Path, tool: str | None, by: str) -> list[str]:
    """Move the pending hash of ``tool`` (of every pending tool when None) into the pins."""
    with _locked(path) as data:
        pending: dict[str, Any] = data.setdefault("pending", {})
        names = sorted(pending) if tool is None else [tool]
        missing = [name for name in names if name not in pending]
        if missing or not names:
            raise NotFound(f"no refused change pending for {', '.join(missing) or 'any tool'}")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for name in names:
            change = pending.pop(name)
            data.setdefault("tools", {})[name] = {
                "sha256": change["sha256"],
                "pinned_at": now,
                "accepted_by": by,
                "audited": False,
            }
        return names


def describe(data: dict[str, Any]) -> str:
    lines = [f"MCP server {data.get('server', '?')}"]
    for name, pin in sorted(data.get("tools", {}).items()):
        by = f", accepted by {pin['accepted_by']}" if pin.get("accepted_by") else ""
        lines.append(f"  pinned   {name}  {pin['sha256'][:16]}  {pin.get('pinned_at', '')}{by}")
    for name, change in sorted(data.get("pending", {}).items()):
        lines.append(f"  REFUSED  {name}  {change['sha256'][:16]}  seen {change.get('seen_at')}")
        # The server's text, shown as data: one indented block, control characters dropped.
        text = "".join(c for c in change.get("description", "") if c.isprintable() or c == "\n")
        lines += [f"           | {line}" for line in text.splitlines()]
    return "\n".join(lines)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[dict[str, Any]]:
    with open(path.with_name(path.name + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            yield data
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
