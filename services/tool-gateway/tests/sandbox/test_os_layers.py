"""The operating-system layers on their own: the Python checks are switched off
(``python_layer=False``) and the snippet uses os, socket and subprocess freely. What still
holds here is what holds for a snippet that gets past the import allow-list."""

import asyncio
import os
import socket
import time

import pytest

from keel_tool_gateway.adapters.sandbox import (
    Sandbox,
    SandboxSettings,
    SandboxTimeout,
    SandboxViolation,
    SnippetFailed,
)

from .conftest import FAST, SECRET, exists, processes_of

# Without the Python layer the allow-list only says what to load before the uid switch (the
# interpreter's files may be unreadable to the sandbox uid, as under pyenv in /root).
ATTACK_MODULES = (
    "os",
    "sys",
    "socket",
    "subprocess",
    "signal",
    "fcntl",
    "struct",
    "time",
    "ctypes",
    "encodings.idna",
)
RAW_SETTINGS = FAST.model_copy(update={"allowed_modules": ATTACK_MODULES})
RAW = Sandbox(RAW_SETTINGS, python_layer=False)
NOBODY = FAST.run_as_uid

pytestmark = pytest.mark.usefixtures("isolated")


async def test_loopback_of_the_host_is_unreachable() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 2)"
        # The seccomp filter refuses socket(2) itself; the network namespace is behind it.
        with pytest.raises(SnippetFailed, match="Operation not permitted"):
            await RAW.run(code)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


@pytest.mark.parametrize("address", ["192.0.2.1", "10.255.255.1"])
async def test_other_addresses_are_unreachable(address: str) -> None:
    # TEST-NET-1 and an unused private address: never contacted, there is no route at all.
    code = f"import socket\nsocket.create_connection(('{address}', 80), 2)"
    with pytest.raises(SnippetFailed, match="Operation not permitted"):
        await RAW.run(code)


async def test_the_only_interface_is_loopback_and_there_is_no_route() -> None:
    # /proc/net shows the run's own network namespace (sockets cannot be made to ask).
    code = (
        "rows = open('/proc/net/dev').read().splitlines()[2:]\n"
        "print([r.split(':')[0].strip() for r in rows])\n"
        "print(open('/proc/net/route').read().splitlines()[1:])"
    )
    result = await RAW.run(code)
    assert result.stdout.splitlines() == ["['lo']", "[]"]
    assert result.isolated is True


async def test_environment_is_scrubbed(secret_env: str) -> None:
    result = await RAW.run("import os\nprint(sorted(os.environ))")
    assert result.stdout.strip() == "['HOME', 'LANG', 'LC_ALL', 'PATH', 'TMPDIR']"
    assert SECRET not in result.stdout


@pytest.mark.usefixtures("as_root")
async def test_runs_as_the_unprivileged_uid_and_cannot_get_root_back() -> None:
    code = (
        "import os\nprint(os.getresuid())\nprint(os.getresgid())\nprint(os.getgroups())\n"
        "try:\n    os.setuid(0)\nexcept PermissionError:\n    print('no root')"
    )
    result = await RAW.run(code)
    assert result.stdout.splitlines() == [
        f"({NOBODY}, {NOBODY}, {NOBODY})",
        f"({NOBODY}, {NOBODY}, {NOBODY})",
        "[]",
        "no root",
    ]


@pytest.mark.usefixtures("as_root")
@pytest.mark.parametrize("path", ["/etc/shadow", "/root/.bashrc"])
async def test_host_files_are_absent(path: str, secret_env: str) -> None:
    code = f"print(open({path!r}, 'rb').read())"
    with pytest.raises(SnippetFailed) as caught:
        await RAW.run(code)
    message = str(caught.value)
    assert "FileNotFoundError" in message
    assert secret_env not in message


async def test_pid_1_is_the_run_itself_with_the_scrubbed_environment(secret_env: str) -> None:
    result = await RAW.run("print(open('/proc/1/environ', 'rb').read())")
    assert secret_env not in result.stdout
    assert "HOME=" in result.stdout


async def test_proc_shows_only_the_runs_own_processes() -> None:
    result = await RAW.run("import os\nprint([p for p in os.listdir('/proc') if p.isdigit()])")
    assert result.stdout.strip() == "['1']"


@pytest.mark.usefixtures("as_root")
async def test_writes_outside_the_scratch_directory_do_not_reach_the_host() -> None:
    marker = f"/tmp/keel-sandbox-escape-{os.getpid()}"
    code = (
        f"try:\n    open({marker!r}, 'w').write('x')\nexcept OSError as e:\n    print(e.errno)\n"
        "try:\n    open('/work-escape', 'w')\nexcept OSError as e:\n    print(e.errno)\n"
        "open('inside', 'w').write('y')\nprint(open('inside').read())"
    )
    result = await RAW.run(code)
    assert result.stdout.splitlines() == ["30", "30", "y"]  # EROFS: the root is read-only
    assert not exists(marker)
    assert not exists("/work-escape")


@pytest.mark.usefixtures("as_root")
async def test_fork_bomb_is_capped_and_nothing_outlives_the_run() -> None:
    before = processes_of(NOBODY)
    code = (
        "import os, time\nn = 0\ntry:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print(n, e.errno)"
    )
    result = await RAW.run(code)
    forked, errno = map(int, result.stdout.split())
    assert forked < FAST.max_processes
    assert errno == 11  # EAGAIN: RLIMIT_NPROC
    await _until_gone(before)


@pytest.mark.usefixtures("as_root")
async def test_a_detached_sleeper_is_killed_with_the_run() -> None:
    before = processes_of(NOBODY)
    code = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\ntime.sleep(600)"
    )
    started = time.monotonic()
    with pytest.raises(SandboxTimeout, match="killed after 1.0 s wall time"):
        await RAW.run(code, timeout_s=1.0)
    assert time.monotonic() - started < 3.5
    await _until_gone(before)


async def test_signals_cannot_reach_the_gateway() -> None:
    code = (
        f"import os, signal\n"
        f"try:\n    os.kill({os.getpid()}, signal.SIGKILL)\n"
        f"except OSError as e:\n    print(type(e).__name__)"
    )
    result = await RAW.run(code)
    # Its PID namespace has no such process (or, as nobody, no permission to signal it).
    assert result.stdout.strip() in {"ProcessLookupError", "PermissionError"}


async def test_subprocesses_inherit_the_limits() -> None:
    # No shell or coreutils inside the box: the interpreter is the only program there.
    code = (
        "import subprocess, sys\n"
        "print(subprocess.run([sys.executable, '-c', 'while True: pass']).returncode)\n"
        "print(subprocess.run([sys.executable, '-c', 'print(open(\"/proc/self/limits\").read())'],"
        " capture_output=True, text=True).stdout)"
    )
    result = await RAW.run(code)
    killed, *table = result.stdout.splitlines()
    assert killed == "-9"  # SIGKILL from RLIMIT_CPU
    soft = {line[:26].strip(): line[26:].split()[0] for line in table[1:] if line.strip()}
    assert soft["Max cpu time"] == str(FAST.cpu_seconds)
    assert soft["Max address space"] == str(FAST.memory_mb * 1024 * 1024)
    assert soft["Max file size"] == str(FAST.max_file_mb * 1024 * 1024)
    assert soft["Max open files"] == str(FAST.max_open_files)
    assert soft["Max processes"] == str(FAST.max_processes)
    assert soft["Max core file size"] == "0"


async def test_memory_limit_holds_without_the_harness_check() -> None:
    with pytest.raises(SandboxViolation, match="memory limit exceeded"):
        await RAW.run("b = bytearray(512 * 1024 * 1024)")


async def test_runs_are_independent_and_scratch_is_fresh() -> None:
    first = await RAW.run("import os\nopen('left', 'w').write('x')\nprint(os.getcwd())")
    second = await RAW.run("import os\nprint(os.listdir('.'), os.getcwd())")
    assert second.stdout.startswith("[]")
    assert first.stdout.strip() != second.stdout.split()[-1]
    assert not exists(first.stdout.strip())


async def test_concurrent_runs_are_capped() -> None:
    sandbox = Sandbox(RAW_SETTINGS.model_copy(update={"max_concurrent": 2}), python_layer=False)
    code = "import time\ntime.sleep(0.5)\nprint('done')"
    started = time.monotonic()
    results = await asyncio.gather(*(sandbox.run(code) for _ in range(4)))
    assert [r.stdout for r in results] == ["done\n"] * 4
    assert time.monotonic() - started >= 1.0


async def test_a_cancelled_call_kills_the_run() -> None:
    before = processes_of(NOBODY)
    task = asyncio.create_task(RAW.run("import time\ntime.sleep(600)"))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _until_gone(before)


def test_settings_reject_a_backend_outside_the_list() -> None:
    with pytest.raises(ValueError, match="backend"):
        SandboxSettings(backend="docker")  # type: ignore[arg-type]


async def _until_gone(before: set[int]) -> None:
    deadline = time.monotonic() + 3.0
    while processes_of(NOBODY) - before:
        assert time.monotonic() < deadline, f"left behind: {processes_of(NOBODY) - before}"
        await asyncio.sleep(0.05)
