"""No isolation, no run: the refusal paths, and the launcher's own checks."""

import os
import shutil
import stat
from pathlib import Path

import pytest

from keel_tool_gateway.adapters.sandbox import (
    Sandbox,
    SandboxSettings,
    SandboxUnavailable,
    backends,
    launcher,
)

from .conftest import FAST


async def test_backend_none_is_refused_by_default() -> None:
    sandbox = Sandbox(FAST.model_copy(update={"backend": "none"}))
    with pytest.raises(SandboxUnavailable, match="refusing to run"):
        await sandbox.run("print(1)")


async def test_backend_none_runs_only_when_explicitly_allowed() -> None:
    settings = FAST.model_copy(update={"backend": "none", "allow_without_isolation": True})
    result = await Sandbox(settings).run("print(1)")
    assert (result.stdout, result.isolated) == ("1\n", False)


async def test_a_missing_bwrap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends.shutil, "which", lambda _name: None)
    sandbox = Sandbox(FAST.model_copy(update={"backend": "bwrap"}))
    with pytest.raises(SandboxUnavailable, match="bwrap is not on PATH"):
        await sandbox.run("print(1)")


def _fake_bwrap(tmp_path: Path) -> str:
    """A 'bwrap' that isolates nothing: it drops its options and runs the command."""
    script = tmp_path / "bwrap"
    script.write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


async def test_a_backend_that_does_not_isolate_is_caught_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_bwrap(tmp_path)
    monkeypatch.setattr(backends.shutil, "which", lambda _name: fake)
    marker = tmp_path / "ran"
    sandbox = Sandbox(FAST.model_copy(update={"backend": "bwrap"}), python_layer=False)
    with pytest.raises(SandboxUnavailable) as caught:
        await sandbox.run(f"open({str(marker)!r}, 'w')")
    assert "the network namespace is the gateway's own" in str(caught.value)
    assert "refusing to run the snippet" in str(caught.value)
    assert not marker.exists()


async def test_auto_keeps_the_proven_backend_even_when_bwrap_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backends.shutil, "which", lambda _name: "/usr/bin/bwrap")
    assert backends.resolve_backend(SandboxSettings()) == "unshare"
    assert backends.resolve_backend(SandboxSettings(backend="bwrap")) == "bwrap"
    monkeypatch.setattr(backends.shutil, "which", lambda _name: None)
    assert backends.resolve_backend(SandboxSettings()) == "unshare"


def test_bwrap_command_shows_only_system_directories_and_the_scratch_dir() -> None:
    launch = backends.build_launch(FAST, "bwrap", "/tmp/keel-sbx-x", 9)
    argv = launch.argv
    for flag in ("--unshare-net", "--unshare-pid", "--die-with-parent", "--clearenv"):
        assert flag in argv
    binds = [
        argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind", "--ro-bind-try")
    ]
    assert "/tmp/keel-sbx-x" in binds
    assert not {"/", "/etc", "/home", "/root", "/work"} & set(binds)


def test_environment_of_a_run_is_minimal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_SANDBOX_TEST_SECRET", "x")
    launch = backends.build_launch(FAST, "unshare", "/tmp/s", 9)
    assert set(launch.env) == {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR"}
    assert launch.env["HOME"] == "/tmp/s"


def test_launcher_rejects_the_gateways_own_network_namespace() -> None:
    own = os.stat("/proc/self/ns/net").st_ino
    assert launcher.verify_network(own) == "the network namespace is the gateway's own"


@pytest.mark.usefixtures("isolated")
async def test_timeout_above_the_configured_maximum_is_refused() -> None:
    with pytest.raises(Exception, match="timeout_s must be above 0 and at most 4"):
        await Sandbox(FAST).run("print(1)", timeout_s=5.0)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
@pytest.mark.xfail(
    reason="the opt-in bwrap backend shows /root (the interpreter's prefix) and fails other "
    "OS-layer probes when run for real; auto uses unshare (docs/sandbox.md)",
    strict=False,
)
async def test_bwrap_backend_isolates_network_and_filesystem() -> None:
    settings = FAST.model_copy(
        update={"backend": "bwrap", "allowed_modules": ("os", "socket", "encodings.idna")}
    )
    raw = Sandbox(settings, python_layer=False)
    code = (
        "import os, socket\n"
        "print(os.path.exists('/etc/shadow'), os.path.exists('/root'), os.path.exists('/work'))\n"
        "try:\n    socket.create_connection(('192.0.2.1', 80), 2)\n"
        "except OSError as e:\n    print(type(e).__name__)"
    )
    result = await raw.run(code)
    assert result.isolated is True
    assert result.stdout.splitlines()[0] == "False False False"
    plain = Sandbox(settings.model_copy(update={"allowed_modules": ("math",)}))
    assert (await plain.run("import math\nprint(math.factorial(5))")).stdout == "120\n"
