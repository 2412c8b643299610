"""Pins of MCP tool descriptions: what a server's tools said when they were first mounted.

A tool's description and schema are text a third party wrote and the model reads as the
tool's meaning; a server that changes them after they were reviewed (an update, a compromise,
a "rug pull") changes what the model is told. So the first mount records a hash of each
tool's (name, description, input schema), and a later mount, reconnect or ``tools/list_changed``
whose hash differs refuses THAT tool (the server's other tools stay) until an operator accepts
the change with ``keel mcp accept SERVER [TOOL]``.

The pins of a server live in ``<pin_dir>/<server>.json``, a file an operator can read and
keep (back it up with the gateway's config)::

    {"server": "github",
     "tools": {"search": {"sha256": "...", "pinned_at": "...", "accepted_by": "", ...}},
     "pending": {"search": {"sha256": "...", "seen_at": "...", "description": "..."}}}

``pending`` holds what was refused (the new hash and description), which is what
``keel mcp accept`` moves into ``tools``. Writers (the gateway and the CLI) take an exclusive
``flock`` on ``<server>.json.lock`` and replace the file atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keel_contracts.canonical import canonical_json, sha256_hex

# How much of a refused description the pin file keeps for the operator to read.
PENDING_DESCRIPTION_CHARS = 2000


def tool_digest(name: str, description: str, input_schema: dict[str, Any]) -> str:
    """The hash a tool is pinned by: its name, its description and its input schema."""
    return sha256_hex(
        canonical_json({"name": name, "description": description, "input_schema": input_schema})
    )


@dataclass
class PinCheck:
    """What one check of a server's tools found."""

    # Tools mounted (pinned before with the same hash, or seen for the first time).
    allowed: list[str] = field(default_factory=list)
    # Seen for the first time: pinned now.
    pinned: list[str] = field(default_factory=list)
    # Accepted by an operator since the gateway last looked: name -> who accepted.
    accepted: dict[str, str] = field(default_factory=dict)
    # Changed since pinned: name -> (pinned hash, new hash). Not mounted.
    refused: dict[str, tuple[str, str]] = field(default_factory=dict)


class PinStore:
    """Pins by server, in ``directory`` (one JSON file per server) or, without one, in memory
    (a change is then caught within this process's life only)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._memory: dict[str, dict[str, Any]] = {}

    def check(self, server: str, tools: dict[str, tuple[str, str]]) -> PinCheck:
        """Check ``tools`` (name -> (digest, description)) against the server's pins, pin the
        new ones and record the refused ones as pending; one locked read-modify-write."""
        result = PinCheck()
        now = _now()
        with self._locked(server) as data:
            pinned, pending = data["tools"], data["pending"]
            for name, (digest, description) in sorted(tools.items()):
                pin = pinned.get(name)
                if pin is None:
                    pinned[name] = {"sha256": digest, "pinned_at": now, "accepted_by": ""}
                    result.pinned.append(name)
                    result.allowed.append(name)
                elif pin["sha256"] == digest:
                    pending.pop(name, None)
                    if pin.get("accepted_by") and not pin.get("audited"):
                        result.accepted[name] = pin["accepted_by"]
                        pin["audited"] = True
                    result.allowed.append(name)
                else:
                    result.refused[name] = (pin["sha256"], digest)
                    pending[name] = {
                        "sha256": digest,
                        "seen_at": now,
                        "description": description[:PENDING_DESCRIPTION_CHARS],
                    }
        return result

    def accept(self, server: str, tool: str | None = None, by: str = "operator") -> list[str]:
        """Accept the pending change of ``tool`` (every pending tool of the server when None);
        the names accepted. The gateway audits each acceptance when it next mounts the tool."""
        with self._locked(server) as data:
            return accept_pending(data, tool, by)

    def path(self, server: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{server}.json"

    @contextlib.contextmanager
    def _locked(self, server: str) -> Iterator[dict[str, Any]]:
        path = self.path(server)
        if path is None:
            yield self._memory.setdefault(server, empty(server))
            return
        with locked_file(path) as data:
            yield data


def empty(server: str) -> dict[str, Any]:
    return {"server": server, "tools": {}, "pending": {}}


def accept_pending(data: dict[str, Any], tool: str | None, by: str) -> list[str]:
    """Move pending hashes into the pins (the file format's one operator action)."""
    names = sorted(data["pending"]) if tool is None else [tool]
    accepted = []
    for name in names:
        change = data["pending"].pop(name, None)
        if change is None:
            continue
        data["tools"][name] = {
            "sha256": change["sha256"],
            "pinned_at": _now(),
            "accepted_by": by,
            "audited": False,
        }
        accepted.append(name)
    return accepted


@contextlib.contextmanager
def locked_file(path: Path) -> Iterator[dict[str, Any]]:
    """The pin file's data under an exclusive lock, written back atomically on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text()) if path.exists() else empty(path.stem)
            data.setdefault("tools", {})
            data.setdefault("pending", {})
            yield data
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
