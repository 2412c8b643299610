"""``file_read``, ``file_write`` and ``file_list``: files in the calling session's workspace.

Each session gets its own directory under ``workspace_root`` (named after the session id from
``current_call()``), created on first use. A path is relative to it: absolute paths and ``..``
are refused before touching the disk, the resolved path (symlinks followed) must stay inside
the workspace, and the final component is opened with ``O_NOFOLLOW`` so a link swapped in
after the check is not followed either. Sizes are capped per file, per read and per workspace.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from keel_tool_gateway.domain.call_context import current_call
from keel_tool_gateway.domain.registry import Tool, ToolError

SAFE_SESSION = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
PATH_FIELD = Field(
    min_length=1,
    max_length=1024,
    description="Path relative to the session workspace, e.g. 'notes/todo.txt'.",
)


class FileSettings(BaseModel):
    """Settings of the file tools (env ``KEEL_TOOL_GATEWAY_FILES__…``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # One sub-directory per session is created here.
    workspace_root: Path = Path(tempfile.gettempdir()) / "keel-workspaces"
    # Largest file file_write leaves behind, and most bytes one file_read returns.
    max_file_bytes: int = Field(default=1_000_000, ge=1)
    # Total size of one session's workspace.
    max_workspace_bytes: int = Field(default=20_000_000, ge=1)
    # Most entries one file_list returns.
    max_list_entries: int = Field(default=500, ge=1)


class FileReadInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = PATH_FIELD
    offset: int = Field(default=0, ge=0, description="Byte to start at.")
    max_bytes: int | None = Field(default=None, ge=1, description="Most bytes to return.")


class FileWriteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = PATH_FIELD
    content: str = Field(description="Text to write (UTF-8).")
    mode: Literal["overwrite", "append"] = "overwrite"


class FileListInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(default=".", max_length=1024, description="Directory to list.")
    recursive: bool = False


class Workspace:
    """The path rules; one per settings, shared by the three tools."""

    def __init__(self, settings: FileSettings) -> None:
        self.settings = settings

    def root(self) -> Path:
        """The calling session's directory, created if missing."""
        session = current_call().session_id
        if not session:
            raise ToolError("file tools need a session: the call has no session id")
        name = session if SAFE_SESSION.match(session) else _hashed(session)
        base = self.settings.workspace_root.resolve()
        root = base / name
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if root.is_symlink() or root.resolve().parent != base:
            raise ToolError("the session workspace is not a plain directory")
        return root.resolve()

    def resolve(self, root: Path, text: str) -> Path:
        """``text`` inside ``root``; refuses anything that could point outside it."""
        if "\x00" in text:
            raise ToolError("path contains a NUL byte")
        pure = PurePosixPath(text.replace("\\", "/"))
        if pure.is_absolute() or text.startswith(("/", "\\", "~")):
            raise ToolError(f"absolute paths are not allowed: {text!r}")
        if ".." in pure.parts:
            raise ToolError(f"'..' is not allowed in paths: {text!r}")
        path = (root / pure).resolve()
        if path != root and not path.is_relative_to(root):
            raise ToolError(f"path {text!r} leads outside the workspace")
        return path

    def display(self, root: Path, path: Path) -> str:
        return path.relative_to(root).as_posix() or "."


def make_file_tools(settings: FileSettings) -> list[Tool[Any]]:
    """``file_read``, ``file_write`` and ``file_list`` over one workspace root."""
    workspace = Workspace(settings)

    def read(args: FileReadInput) -> str:
        root = workspace.root()
        path = workspace.resolve(root, args.path)
        limit = min(args.max_bytes or settings.max_file_bytes, settings.max_file_bytes)
        data, size = _read_nofollow(path, args.offset, limit)
        text = data.decode("utf-8", errors="replace")
        end = args.offset + len(data)
        if end < size:
            text += f"\n[truncated: bytes {args.offset}-{end} of {size}; read on with offset={end}]"
        return text

    def write(args: FileWriteInput) -> str:
        root = workspace.root()
        path = workspace.resolve(root, args.path)
        if path == root:
            raise ToolError("a file path is needed")
        data = args.content.encode("utf-8")
        existing = _file_size(path)
        final = len(data) + (existing if args.mode == "append" else 0)
        if final > settings.max_file_bytes:
            raise ToolError(f"file would be {final} bytes; the limit is {settings.max_file_bytes}")
        used = _tree_size(root) - existing
        if used + final > settings.max_workspace_bytes:
            raise ToolError(
                f"workspace would hold {used + final} bytes; the limit is "
                f"{settings.max_workspace_bytes}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        # The parent may have been created through a link since the check: check again.
        workspace.resolve(root, args.path)
        _write_nofollow(path, data, append=args.mode == "append")
        verb = "appended" if args.mode == "append" else "wrote"
        return f"{verb} {len(data)} bytes to {workspace.display(root, path)}"

    def list_(args: FileListInput) -> str:
        root = workspace.root()
        path = workspace.resolve(root, args.path)
        if not path.is_dir():
            raise ToolError(f"not a directory: {args.path!r}")
        lines: list[str] = []
        for entry in _walk(path, args.recursive):
            if len(lines) == settings.max_list_entries:
                lines.append(f"[truncated: more than {settings.max_list_entries} entries]")
                break
            lines.append(_describe(workspace.display(root, entry), entry))
        return "\n".join(lines) if lines else "(empty)"

    tools: list[Tool[Any]] = [
        Tool(
            name="file_read",
            description="Read a text file from this session's workspace (capped).",
            input_model=FileReadInput,
            run=read,
            effects="read_only",
        ),
        Tool(
            name="file_write",
            description="Write or append a text file in this session's workspace.",
            input_model=FileWriteInput,
            run=write,
        ),
        Tool(
            name="file_list",
            description="List a directory of this session's workspace: type, size, path.",
            input_model=FileListInput,
            run=list_,
            effects="read_only",
        ),
    ]
    return tools


def _hashed(session: str) -> str:
    return "s-" + hashlib.sha256(session.encode("utf-8")).hexdigest()[:32]


def _read_nofollow(path: Path, offset: int, limit: int) -> tuple[bytes, int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ToolError(f"no such file: {path.name!r}") from None
    except IsADirectoryError:
        raise ToolError(f"{path.name!r} is a directory") from None
    except OSError as exc:
        raise ToolError(f"cannot read {path.name!r}: {exc.strerror}") from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(status.st_mode) else "not a regular file"
        raise ToolError(f"{path.name!r} is {kind}")
    with os.fdopen(fd, "rb") as handle:
        size = status.st_size
        handle.seek(offset)
        return handle.read(limit), size


def _write_nofollow(path: Path, data: bytes, *, append: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o600)
    except IsADirectoryError:
        raise ToolError(f"{path.name!r} is a directory") from None
    except OSError as exc:
        raise ToolError(f"cannot write {path.name!r}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _file_size(path: Path) -> int:
    try:
        return path.lstat().st_size if path.is_file() and not path.is_symlink() else 0
    except FileNotFoundError:
        return 0


def _tree_size(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _walk(path: Path, recursive: bool) -> list[Path]:
    entries = sorted(path.iterdir())
    if not recursive:
        return entries
    found: list[Path] = []
    for entry in entries:
        found.append(entry)
        # Links are listed, never descended into: they may point outside the workspace.
        if entry.is_dir() and not entry.is_symlink():
            found.extend(_walk(entry, recursive))
    return found


def _describe(name: str, entry: Path) -> str:
    if entry.is_symlink():
        return f"link  -  {name}"
    if entry.is_dir():
        return f"dir   -  {name}/"
    return f"file  {entry.lstat().st_size}  {name}"
