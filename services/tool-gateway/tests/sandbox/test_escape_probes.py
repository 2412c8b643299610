"""The OS layer alone against escape attempts (probes.py), with the Python layer switched off,
once with the gateway running as root and once as an unprivileged user (as the Docker image
runs it). Every probe checks on the host that what it attempted did not happen."""

import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import keel_tool_gateway.adapters.sandbox.runner as runner_module
from keel_tool_gateway.adapters.sandbox import Sandbox
from keel_tool_gateway.adapters.sandbox.cgroups import CGROUP_ROOT

from .conftest import FAST, PROBE_RESULTS, SECRET, isolation_problem
from .probes import PROBES, Outcome, probe_names, run_probes

PROBES_FILE = Path(__file__).with_name("probes.py")
GATEWAY_UID = GATEWAY_GID = 4242  # the unprivileged gateway: no such user on the machine
HOGS, HOG_MB = 4, 150
SETTINGS = FAST.model_copy(
    update={
        "allowed_modules": ("os", "ctypes", "socket", "subprocess", "time", "encodings.idna"),
        "max_file_mb": 64,  # above scratch_mb: the scratch tmpfs is what stops one big file
        "scratch_inodes": 256,
        "run_memory_mb": 384,  # below HOGS x HOG_MB: only the run's cgroup stops them all
        # A parent of this run's own: another suite running at the same time hands its
        # (default) parent back to root when it ends, which must not take this one's away.
        "cgroup_parent": f"keel-sandbox-test-{os.getpid()}",
    }
)
BY_NAME = {probe.name: probe for probe in PROBES}
MODES = ("root-gateway", "user-gateway")

pytestmark = [pytest.mark.timeout(600)]


class Listeners:
    """A TCP port, a unix socket file and an abstract unix socket, all listening on the host;
    ``accepted()`` says which of them ever got a connection."""

    def __init__(self, directory: Path, tag: str) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.unix_path = str(directory / "gateway.sock")
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.unix_path)
        os.chmod(self.unix_path, 0o777)
        self.abstract_name = f"\0keel-probe-{tag}"
        self.abstract = socket.socket(socket.AF_UNIX)
        self.abstract.bind(self.abstract_name)
        self.sockets = {"tcp": self.tcp, "unix": self.unix, "abstract": self.abstract}
        for sock in self.sockets.values():
            sock.listen(8)
            sock.setblocking(False)
        self._seen: set[str] = set()

    def accepted(self) -> set[str]:
        for key, sock in self.sockets.items():
            try:
                connection, _ = sock.accept()
            except BlockingIOError:
                continue
            connection.close()
            self._seen.add(key)
        return set(self._seen)

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


def _setuid_python(directory: Path) -> str:
    """A root-owned setuid copy of the interpreter, laid out as a prefix (bin/ and a lib link)
    so it starts; run inside the box it must not come up with euid 0."""
    real = Path(os.path.realpath(sys.executable))
    (directory / "bin").mkdir(parents=True)
    copy = directory / "bin" / real.name
    shutil.copy2(real, copy)
    os.chown(copy, 0, 0)
    os.chmod(copy, 0o4755)
    (directory / "lib").symlink_to(real.parent.parent / "lib")
    directory.chmod(0o755)
    return str(copy)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    problem = isolation_problem()
    if problem:
        pytest.skip(f"no isolation on this machine: {problem}")
    if os.getuid() != 0:
        pytest.skip("the probes start the unprivileged gateway from root (as CI runs)")
    tag = uuid.uuid4().hex[:10]
    base = tmp_path_factory.mktemp("probes")
    base.chmod(0o755)
    sockets_dir = base / "sockets"
    sockets_dir.mkdir(mode=0o777)
    sockets_dir.chmod(0o777)
    listeners = Listeners(sockets_dir, tag)
    trust = base / "trust"
    trust.mkdir(mode=0o700)
    (trust / "signing.key").write_text(f"keel trust root secret {tag} do-not-leak\n")
    user_home = base / "user-home"
    user_home.mkdir(mode=0o700)
    for name in (".bashrc", ".profile"):
        (user_home / name).write_text(f"# the gateway user's {name} {tag} untouched\n")
    os.chown(user_home, GATEWAY_UID, GATEWAY_GID)
    for path in user_home.iterdir():
        os.chown(path, GATEWAY_UID, GATEWAY_GID)
    python = os.path.realpath(sys.executable)
    repo = Path(__file__).resolve().parents[4]
    import keel_tool_gateway

    ctx = {
        "tag": tag,
        "marker": f"keel-escape-{tag}",
        "secret": SECRET,
        "argv_marker": f"gateway-argv-{tag}",
        "prefix": str(Path(python).parent.parent),
        "prefix_site_packages": str(
            Path(python).parent.parent
            / "lib"
            / f"python{sys.version_info[0]}.{sys.version_info[1]}"
            / "site-packages"
        ),
        "site_packages": str(Path(keel_tool_gateway.__file__).parents[3]),
        "source_dir": str(Path(keel_tool_gateway.__file__).parent),
        "gateway_source": str(Path(runner_module.__file__)),
        "repo": str(repo),
        "venv_cfg": str(Path(sys.prefix) / "pyvenv.cfg"),
        "trust_dir": str(trust),
        "trust_file": str(trust / "signing.key"),
        "scratch_root": "/tmp",
        "tcp_port": listeners.tcp.getsockname()[1],
        "unix_path": listeners.unix_path,
        "abstract": listeners.abstract_name,
        "setuid_python": _setuid_python(base / "suid"),
        "setuid_dir": str(base / "suid"),
        "scratch_inodes": SETTINGS.scratch_inodes,
        "scratch_bytes": SETTINGS.scratch_mb * 1024 * 1024,
        "max_processes": SETTINGS.max_processes,
        "hogs": HOGS,
        "hog_mb": HOG_MB,
        "user_home": str(user_home),
    }
    if "site-packages" not in ctx["site_packages"]:  # an editable install: the venv's own
        ctx["site_packages"] = str(
            Path(sys.prefix)
            / "lib"
            / f"python{sys.version_info[0]}.{sys.version_info[1]}"
            / "site-packages"
        )
    ctx["accepted"] = listeners.accepted
    try:
        yield ctx
    finally:
        listeners.close()
        shutil.rmtree(base, ignore_errors=True)


def _in_thread(work: Callable[[], Any]) -> Any:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


@pytest.fixture(scope="module")
def outcomes_root(host: dict[str, Any]) -> dict[str, Outcome]:
    ctx = {**host, "home": str(Path.home()), "gateway_pid": os.getpid()}
    sandbox = Sandbox(SETTINGS, python_layer=False, ro_binds=(host["setuid_dir"],))
    old = os.environ.copy()
    os.environ.update({"KEEL_TRUST_DIR": host["trust_dir"], "KEEL_SANDBOX_TEST_SECRET": SECRET})
    try:
        return dict(_in_thread(lambda: asyncio.run(run_probes(sandbox, ctx))))
    finally:
        os.environ.clear()
        os.environ.update(old)


@pytest.fixture(scope="module", autouse=True)
def _own_cgroup_parent() -> Iterator[None]:
    """This module's cgroup parent is removed when it is done (its runs' groups are gone)."""
    yield
    for hierarchy in ("memory", "pids", ""):
        with contextlib.suppress(OSError):
            (CGROUP_ROOT / hierarchy / SETTINGS.cgroup_parent).rmdir()


def _delegate_cgroups(uid: int) -> list[Path]:
    """Give the unprivileged gateway the parent of the runs' cgroups, as a container runtime
    or systemd (Delegate=yes) gives a service its subtree."""
    delegated = []
    for hierarchy in ("memory", "pids"):
        parent = CGROUP_ROOT / hierarchy / SETTINGS.cgroup_parent
        if (CGROUP_ROOT / hierarchy / "cgroup.procs").exists():
            parent.mkdir(exist_ok=True)
            os.chown(parent, uid, -1)
            delegated.append(parent)
    return delegated


@pytest.fixture(scope="module")
def outcomes_user(host: dict[str, Any]) -> dict[str, Outcome]:
    delegated = _delegate_cgroups(GATEWAY_UID)
    json_ctx = {k: v for k, v in host.items() if k != "accepted"}
    json_ctx["home"] = host["user_home"]
    repo = host["repo"]
    config = {
        "uid": GATEWAY_UID,
        "gid": GATEWAY_GID,
        "reachable": [json_ctx["prefix"], repo],
        "stash": str(Path(host["user_home"]).parent / "stash"),
        "env": {
            "HOME": host["user_home"],
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "KEEL_TRUST_DIR": host["trust_dir"],
            "KEEL_SANDBOX_TEST_SECRET": SECRET,
        },
        "settings": json.loads(SETTINGS.model_dump_json()),
        "ro_binds": [host["setuid_dir"]],
        "ctx": json_ctx,
        "marker": host["argv_marker"],
    }
    try:
        done = subprocess.run(
            [sys.executable, str(PROBES_FILE), json.dumps(config)],
            capture_output=True,
            text=True,
            timeout=500,
            check=False,
        )
    finally:
        for parent in delegated:
            os.chown(parent, 0, -1)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.splitlines()[-1])
    host["user_gateway_pid"] = report["pid"]
    return {name: Outcome(ok, text) for name, (ok, text) in report["outcomes"].items()}


def test_there_are_enough_probes() -> None:
    assert len(PROBES) * len(MODES) >= 80
    assert len(set(probe_names())) == len(PROBES)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", probe_names())
def test_probe_does_not_escape(
    name: str, mode: str, host: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    outcomes: dict[str, Outcome] = request.getfixturevalue(f"outcomes_{mode.split('-')[0]}")
    ctx = dict(host)
    if mode == "user-gateway":
        ctx["home"] = host["user_home"]
        ctx["gateway_pid"] = host["user_gateway_pid"]
    else:
        ctx["home"] = str(Path.home())
        ctx["gateway_pid"] = os.getpid()
    outcome = outcomes[name]
    # A run that never started proves nothing about the boundary.
    for never_ran in ("did not start", "isolation is unavailable", "cannot start the sandbox"):
        assert never_ran not in outcome.text, outcome.text
    try:
        BY_NAME[name].check(ctx, outcome)
    except AssertionError:
        PROBE_RESULTS.append((name, mode, True))
        raise
    PROBE_RESULTS.append((name, mode, False))


def test_the_gateway_users_home_keeps_only_what_it_had(host: dict[str, Any]) -> None:
    home = Path(host["user_home"])
    assert sorted(p.name for p in home.iterdir()) == [".bashrc", ".profile"]
    assert all(stat.S_IMODE(p.stat().st_mode) for p in home.iterdir())
