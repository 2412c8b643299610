"""A stdio MCP server inside the sandbox's box (``adapters/sandbox/box.py``).

A server is third-party code the gateway runs before any of its tools is called: as a plain
child it would share the gateway's uid, network and files, and could read the gateway's
environment through /proc and talk to Kafka. Boxed, it gets its own PID, mount, IPC, UTS and
network namespaces, its own uid, a minimal read-only root (the system libraries, its runtime,
its declared paths), a private /proc and scratch, no network (seccomp refuses ``socket``)
or only its declared hosts through the gateway's proxy (``proxy.py``), and only the
environment its configuration declares. The launcher is spawned by the MCP SDK
in place of the server and hands the server the SDK's stdin/stdout; it has no status
descriptor, and its configuration (the server's env, perhaps a token) travels in its own
environment, not on a command line anyone can read.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from keel_contracts.errors import ConfigError
from keel_tool_gateway.adapters.mcp.settings import McpServerSettings
from keel_tool_gateway.adapters.sandbox.box import BoxSpec, Launch, box_launch, interpreter_prefix

# asyncio's wake-up pipe is a socketpair (AF_UNIX only, connected to nothing else); ``socket``
# stays refused, so the server can open no connection of any kind.
SECCOMP_ALLOW = ("socketpair",)
SCRATCH_INODES = 16384
LANG = "C.UTF-8"
PROXY_PORT = 3128  # on the box's own loopback


def boxed_launch(
    server: McpServerSettings, *, python: str | None = None, proxy_socket: str | None = None
) -> Launch:
    """The launcher command that runs ``server`` boxed; ``python`` runs the launcher.

    Without ``allowed_hosts`` the box has no network at all. With them, ``proxy_socket`` is
    the gateway's allow-listing proxy for this server (``proxy.host_proxy``): the box's
    loopback carries a forwarder to it on ``PROXY_PORT``, ``HTTP(S)_PROXY`` name it, and
    seccomp lets ``socket`` through for AF_INET only (the namespace holds nothing else).
    Raises ConfigError when hosts are declared but no proxy is given (never a box with the
    network open) and for a command that is not found.
    """
    if server.allowed_hosts and proxy_socket is None:
        raise ConfigError(
            f"MCP server {server.name!r} declares allowed_hosts but no proxy was started "
            "for it; refusing to run it"
        )
    command = resolve_command(server)
    read_only = command_paths(command)
    read_only += (
        [str(path) for path in server.read_only_paths]
        if server.read_only_paths is not None
        else argument_paths(server.args)
    )
    if proxy_socket is not None:
        # The launcher's relay reaches the proxy from inside the box's root; the server
        # cannot (no AF_UNIX socket passes seccomp).
        read_only.append(os.path.dirname(proxy_socket))
    scratch = scratch_dir(server.name)
    env = {
        "PATH": os.path.dirname(command),
        "HOME": scratch,
        "TMPDIR": scratch,
        "LANG": LANG,
        **server.env,
    }
    if proxy_socket is not None:
        proxy_url = f"http://127.0.0.1:{PROXY_PORT}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = proxy_url
    spec = BoxSpec(
        argv=[command, *server.args],
        scratch=scratch,
        uid=server.uid,
        gid=server.gid,
        env=env,
        scratch_bytes=server.scratch_mb * 1024 * 1024,
        scratch_inodes=SCRATCH_INODES,
        ro_binds=read_only,
        rw_binds=[str(path) for path in server.writable_paths],
        rlimits={"RLIMIT_CORE": 0},
        wall_s=0,
        mask_packages=False,
        seccomp_allow=SECCOMP_ALLOW,
        cwd=str(server.cwd) if server.cwd is not None else None,
        socket_domains=(socket.AF_INET,) if proxy_socket is not None else (),
        proxy_socket=proxy_socket,
        proxy_port=PROXY_PORT,
    )
    return box_launch(spec, None, python=python, config_in_env=True)


def resolve_command(server: McpServerSettings) -> str:
    """The command as an absolute path (looked up on the gateway's PATH, as the SDK would):
    inside the box there is no PATH search over the host's directories."""
    found = shutil.which(server.command)
    if found is None:
        raise ConfigError(f"MCP server {server.name!r}: command {server.command!r} not found")
    return os.path.abspath(found)


def command_paths(command: str) -> list[str]:
    """What the command needs to start. A Python interpreter: its installation and, when it
    is a virtualenv's, the virtualenv — packages included, since the server imports them
    (the sandbox hides them from snippets; a server is not a snippet). Another program: its
    own file (and the file a symlink names); its libraries come with the system's."""
    real = os.path.realpath(command)
    if Path(real).name.startswith("python"):
        paths = [interpreter_prefix(real)]
        venv = Path(command).parent.parent
        if (venv / "pyvenv.cfg").is_file():
            paths.append(str(venv))
        return paths
    return list(dict.fromkeys([command, real]))


def argument_paths(args: list[str]) -> list[str]:
    """The absolute paths among the arguments that exist (the server's script, its
    package): the default read-only paths beside the command's."""
    return [arg for arg in args if os.path.isabs(arg) and os.path.exists(arg)]


def scratch_dir(name: str) -> str:
    """The host directory the box's root and scratch are mounted on (inside each box's own
    mount namespace; nothing written there reaches the host). One per server name, kept."""
    path = Path(tempfile.gettempdir()) / f"keel-mcp-{name}"
    path.mkdir(mode=0o700, exist_ok=True)
    found = path.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        # Someone else's directory (or a link) in a shared temp dir: not ours to mount on.
        raise ConfigError(f"MCP server {name!r}: {path} is not a directory of this user")
    return str(path)
