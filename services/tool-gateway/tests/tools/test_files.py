"""file_read / file_write / file_list inside per-session workspaces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from keel_tool_gateway.adapters.tools.files import FileSettings, make_file_tools
from keel_tool_gateway.domain.call_context import ToolContext, calling
from keel_tool_gateway.domain.registry import Tool, ToolError


@pytest.fixture
def settings(tmp_path: Path) -> FileSettings:
    return FileSettings(workspace_root=tmp_path / "ws", max_file_bytes=100, max_workspace_bytes=250)


@pytest.fixture
def tools(settings: FileSettings) -> dict[str, Tool[Any]]:
    return {tool.name: tool for tool in make_file_tools(settings)}


def call(tools: dict[str, Tool[Any]], name: str, session: str = "sess-1", **args: Any) -> str:
    tool = tools[name]
    with calling(ToolContext(session_id=session)):
        result = tool.run(tool.input_model.model_validate(args))
    assert isinstance(result, str)
    return result


def test_write_read_list_round_trip(tools: dict[str, Tool[Any]], settings: FileSettings) -> None:
    assert call(tools, "file_write", path="notes/a.txt", content="héllo") == (
        "wrote 6 bytes to notes/a.txt"
    )
    assert call(tools, "file_write", path="notes/a.txt", content="!", mode="append") == (
        "appended 1 bytes to notes/a.txt"
    )
    assert call(tools, "file_read", path="notes/a.txt") == "héllo!"
    assert call(tools, "file_list") == "dir   -  notes/"
    assert call(tools, "file_list", recursive=True) == "dir   -  notes/\nfile  7  notes/a.txt"
    assert (settings.workspace_root / "sess-1" / "notes" / "a.txt").read_text() == "héllo!"


def test_sessions_are_isolated(tools: dict[str, Tool[Any]]) -> None:
    call(tools, "file_write", session="alice", path="secret.txt", content="alice's")
    with pytest.raises(ToolError, match="no such file"):
        call(tools, "file_read", session="bob", path="secret.txt")
    assert call(tools, "file_list", session="bob") == "(empty)"


def test_unsafe_session_ids_get_a_hashed_directory(
    tools: dict[str, Tool[Any]], settings: FileSettings
) -> None:
    call(tools, "file_write", session="../../etc", path="x.txt", content="x")
    [directory] = os.listdir(settings.workspace_root)
    assert directory.startswith("s-")
    assert len(directory) == 34


def test_no_session_no_files(tools: dict[str, Tool[Any]]) -> None:
    with pytest.raises(ToolError, match="need a session"):
        call(tools, "file_list", session="")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc/passwd", "absolute paths"),
        ("\\windows\\x", "absolute paths"),
        ("~/x", "absolute paths"),
        ("../other/x.txt", "'..' is not allowed"),
        ("a/../../x", "'..' is not allowed"),
        ("a\\..\\..\\x", "'..' is not allowed"),
        ("a\x00b", "NUL"),
    ],
)
def test_paths_that_could_leave_are_refused(
    tools: dict[str, Tool[Any]], path: str, message: str
) -> None:
    for name, args in (("file_read", {}), ("file_write", {"content": "x"})):
        with pytest.raises(ToolError, match=message):
            call(tools, name, path=path, **args)


def test_symlinks_out_of_the_workspace_are_refused(
    tools: dict[str, Tool[Any]], settings: FileSettings, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    call(tools, "file_list")  # creates the workspace
    root = settings.workspace_root / "sess-1"
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "dirlink").symlink_to(outside)
    with pytest.raises(ToolError, match="leads outside the workspace"):
        call(tools, "file_read", path="link.txt")
    with pytest.raises(ToolError, match="leads outside the workspace"):
        call(tools, "file_read", path="dirlink/secret.txt")
    with pytest.raises(ToolError, match="leads outside the workspace"):
        call(tools, "file_write", path="dirlink/new.txt", content="x")
    with pytest.raises(ToolError, match="leads outside the workspace"):
        call(tools, "file_list", path="dirlink")
    assert not (outside / "new.txt").exists()
    listing = call(tools, "file_list", recursive=True)
    assert "link  -  dirlink" in listing
    assert "secret" not in listing


def test_symlink_inside_the_workspace_is_followed(
    tools: dict[str, Tool[Any]], settings: FileSettings
) -> None:
    call(tools, "file_write", path="real.txt", content="inside")
    (settings.workspace_root / "sess-1" / "alias.txt").symlink_to("real.txt")
    assert call(tools, "file_read", path="alias.txt") == "inside"


def test_size_caps(tools: dict[str, Tool[Any]]) -> None:
    with pytest.raises(ToolError, match="file would be 101 bytes; the limit is 100"):
        call(tools, "file_write", path="a.txt", content="x" * 101)
    call(tools, "file_write", path="a.txt", content="x" * 100)
    with pytest.raises(ToolError, match="file would be 101 bytes"):
        call(tools, "file_write", path="a.txt", content="y", mode="append")
    call(tools, "file_write", path="b.txt", content="x" * 100)
    with pytest.raises(ToolError, match="workspace would hold 260 bytes; the limit is 250"):
        call(tools, "file_write", path="c.txt", content="x" * 60)
    # Overwriting counts the new size, not old + new.
    call(tools, "file_write", path="b.txt", content="x" * 50)


def test_reads_are_capped_and_resumable(tools: dict[str, Tool[Any]]) -> None:
    call(tools, "file_write", path="a.txt", content="0123456789")
    assert call(tools, "file_read", path="a.txt", max_bytes=4) == (
        "0123\n[truncated: bytes 0-4 of 10; read on with offset=4]"
    )
    assert call(tools, "file_read", path="a.txt", offset=4) == "456789"


def test_directories_and_missing_files(tools: dict[str, Tool[Any]]) -> None:
    call(tools, "file_write", path="d/a.txt", content="x")
    with pytest.raises(ToolError, match="is a directory"):
        call(tools, "file_read", path="d")
    with pytest.raises(ToolError, match="is a directory"):
        call(tools, "file_write", path="d", content="x")
    with pytest.raises(ToolError, match="a file path is needed"):
        call(tools, "file_write", path=".", content="x")
    with pytest.raises(ToolError, match="not a directory"):
        call(tools, "file_list", path="d/a.txt")
    with pytest.raises(ToolError, match="no such file"):
        call(tools, "file_read", path="nope.txt")


def test_listing_is_capped(tmp_path: Path) -> None:
    tools = {
        t.name: t
        for t in make_file_tools(FileSettings(workspace_root=tmp_path, max_list_entries=3))
    }
    for n in range(5):
        call(tools, "file_write", path=f"f{n}.txt", content="x")
    assert call(tools, "file_list").split("\n")[-1] == "[truncated: more than 3 entries]"
