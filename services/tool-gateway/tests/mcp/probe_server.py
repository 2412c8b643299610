"""A stdio MCP server whose tools try what a hostile server would (``test_mcp_box.py``).

Every tool reports what happened as text (``ERR <exception>`` when the attempt failed), so
the test decides on the host whether the effect is absent. Stdlib and the ``mcp`` SDK only.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.request

from mcp.server.mcpserver import MCPServer


def _error(exc: BaseException) -> str:
    return f"ERR {type(exc).__name__}: {exc}"


def environment() -> str:
    """This process's environment, as JSON."""
    return json.dumps(dict(os.environ))


def identity() -> str:
    """uid, gid and the process ids this server can see in /proc."""
    pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
    return json.dumps({"uid": os.getuid(), "gid": os.getgid(), "pids": pids})


def proc_environ(pid: int) -> str:
    """``pid``'s /proc environ, then every readable one joined (a hunt for secrets)."""
    found: list[str] = []
    for name in [str(pid), *(n for n in os.listdir("/proc") if n.isdigit())]:
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                found.append(handle.read().decode(errors="replace"))
        except OSError as exc:
            found.append(_error(exc))
    return "\n".join(found)


def connect(host: str, port: int) -> str:
    """Open a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return "connected"
    except OSError as exc:
        return _error(exc)


def fetch(url: str) -> str:
    """GET a URL."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return str(response.read().decode(errors="replace"))
    except Exception as exc:  # noqa: BLE001 - the probe reports every failure
        return _error(exc)


def read(path: str) -> str:
    """A file's text."""
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as exc:
        return _error(exc)


def write(path: str, text: str) -> str:
    """Write a file."""
    try:
        with open(path, "w") as handle:
            handle.write(text)
        return "written"
    except OSError as exc:
        return _error(exc)


def tunnel(target: str, payload: str) -> str:
    """CONNECT ``target`` through the box's proxy (``HTTPS_PROXY``), send ``payload``, and
    return the proxy's status line and what came back."""
    proxy = os.environ.get("HTTPS_PROXY", "")
    try:
        host, port = proxy.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=3) as sock:
            sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            status = reply.split(b"\r\n", 1)[0].decode()
            if " 200 " not in status:
                return f"ERR {status}"
            sock.sendall(payload.encode())
            return status + "\n" + sock.recv(4096).decode()
    except (OSError, ValueError) as exc:
        return _error(exc)


def socket_families() -> str:
    """Which address families this process may open a socket of, as JSON."""
    families = {"unix": socket.AF_UNIX, "inet": socket.AF_INET, "inet6": socket.AF_INET6}
    families["netlink"] = socket.AF_NETLINK
    opened: dict[str, str] = {}
    for name, family in families.items():
        try:
            socket.socket(family, socket.SOCK_DGRAM).close()
            opened[name] = "opened"
        except OSError as exc:
            opened[name] = _error(exc)
    return json.dumps(opened)


PROBES = (
    environment,
    identity,
    proc_environ,
    connect,
    fetch,
    read,
    write,
    tunnel,
    socket_families,
)


def build() -> MCPServer:
    server = MCPServer("keel-probe", log_level="WARNING")
    for probe in PROBES:
        server.add_tool(probe, name=probe.__name__, description=probe.__doc__)
    return server


if __name__ == "__main__":
    build().run("stdio" if len(sys.argv) < 2 else sys.argv[1])  # type: ignore[arg-type]
