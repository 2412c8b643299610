"""The first process of a sandbox run, passed to ``python -I -S -c`` with a JSON config.

Standalone (stdlib only, no ``__future__`` import); its program text is ``seccomp.py``,
``rootfs.py`` and this file joined (``box.launcher_source``), so the imports of those two
below only serve type checking and tests. As the gateway's user it:

1. makes new network, PID, mount, IPC and UTS namespaces, and a user namespace when not root
   (``unshare`` backend; under bwrap it only
   checks the ones bwrap made) and verifies the network namespace really is a new one, with
   no interface but loopback; when it cannot, it refuses unless told to run without;
2. joins the run's cgroups (memory, pids) when the gateway made any, then forks the
   snippet's process, which builds the minimal root and pivots into it (``rootfs.py``), drops
   every privilege, applies the rlimits, sets NO_NEW_PRIVS, installs the seccomp filter
   (``seccomp.py``) and execs the harness. It is PID 1 of its own namespace: when it exits,
   the kernel kills every process it left behind;
3. waits, kills the snippet's process on SIGTERM (the gateway's time-out or death) or when its
   own wall-clock alarm fires, and reports the outcome as JSON lines on the status descriptor,
   which the snippet never holds.
"""

import ctypes
import fcntl
import json
import os
import resource
import selectors
import signal
import socket
import struct
import sys
from typing import Any, NoReturn

try:  # joined into one program text when run; imported only for type checks and tests
    from keel_tool_gateway.adapters.sandbox.rootfs import build_root, drop_privileges
    from keel_tool_gateway.adapters.sandbox.seccomp import install_filter
except ImportError:  # pragma: no cover - the standalone program has them defined above
    pass

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
EXIT_CHILD_SETUP = 127


CONFIG_ENV = "KEEL_BOX_CONFIG"


class Status:
    """JSON lines to the gateway; each write is one small, atomic pipe write. Without a
    descriptor (a stdio tool server, whose spawner reads only stdin/stdout) nothing is sent,
    and a refusal goes to stderr instead (``main``)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def send(self, **fields: Any) -> None:
        if self._fd is not None:
            os.write(self._fd, (json.dumps(fields) + "\n").encode())


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _netns() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def unshare(libc: Any, inner_uid: int, inner_gid: int) -> str:
    """New namespaces for this process (network, mount, IPC, UTS) and its children (PID); ''
    when done, else why not. Without root, a user namespace maps the gateway's uid (the only
    one an unprivileged process may map) to ``inner_uid``: the run is then not uid 0 even
    inside, and holds its capabilities only until it drops them (``rootfs.drop_privileges``)."""
    flags = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:
        flags |= CLONE_NEWUSER
    if libc.unshare(flags) != 0:
        return f"unshare failed: {os.strerror(ctypes.get_errno())}"
    if uid != 0:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{inner_uid} {uid} 1")
        _write("/proc/self/gid_map", f"{inner_gid} {gid} 1")
    return ""


def verify_network(host_netns: int) -> str:
    """'' when this process is in a network namespace other than the gateway's, with no
    interface but loopback; else what is wrong."""
    try:
        current = _netns()
    except OSError as exc:
        return f"cannot read the network namespace: {exc}"
    if current == host_netns:
        return "the network namespace is the gateway's own"
    names = sorted(name for _, name in socket.if_nameindex())
    if any(name != "lo" for name in names):
        return f"the new network namespace has interfaces {names}"
    return ""


def isolate(config: dict[str, Any], libc: Any) -> str:
    backend = config["backend"]
    if backend == "none":
        return "isolation is switched off (backend none)"
    if backend == "unshare":
        problem = unshare(libc, config["uid"], config["gid"])
        if problem:
            return problem
    return verify_network(config["host_netns"])


def loopback_up() -> None:
    """Bring up ``lo`` in the box's network namespace (the launcher still holds
    CAP_NET_ADMIN there): the proxy forwarder listens on it, and it leads nowhere else."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def proxy_listener(port: int) -> socket.socket:
    """The forwarder's socket on the box's loopback, listening before the program starts (a
    connection that comes early waits in the backlog)."""
    loopback_up()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    return listener


class Relay:
    """Each connection to the box's loopback port relayed to the gateway's proxy on its unix
    socket: the proxy decides which host, if any, it leads to. (The socket's directory is
    bound into the box, since the child's pivot_root moved this process's root too; the
    program cannot use it: seccomp refuses it AF_UNIX sockets.)

    One thread, one selector: a process that unshared its PID namespace cannot start
    threads (the kernel refuses CLONE_THREAD there), and a forked helper would live inside
    the box's PID namespace. ``run`` also reaps the child, so it replaces the blocking wait.
    """

    def __init__(self, listener: socket.socket, path: str) -> None:
        self._listener = listener
        self._path = path
        self._selector = selectors.DefaultSelector()
        self._peer: dict[socket.socket, socket.socket] = {}
        self._ended: set[socket.socket] = set()

    def run(self, child: int) -> tuple[int, Any]:
        wake_read, wake_write = os.pipe()
        for fd in (wake_read, wake_write):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wake_write)  # SIGCHLD (and SIGTERM) end the select at once
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(wake_read, selectors.EVENT_READ)
        while True:
            pid, wait_status, usage = os.wait4(child, os.WNOHANG)
            if pid == child:
                return wait_status, usage
            for key, _ in self._selector.select(timeout=1.0):
                if key.fileobj == wake_read:
                    try:
                        os.read(wake_read, 4096)
                    except BlockingIOError:
                        pass
                elif key.fileobj is self._listener:
                    self._accept()
                else:
                    self._move(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self._path)
        except OSError:
            client.close()
            upstream.close()
            return
        for sock in (client, upstream):
            sock.setblocking(True)
            self._selector.register(sock, selectors.EVENT_READ)
        self._peer[client], self._peer[upstream] = upstream, client

    def _move(self, source: socket.socket) -> None:
        sink = self._peer[source]
        try:
            data = source.recv(65536)
            if data:
                sink.sendall(data)
                return
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(source)
            return
        self._selector.unregister(source)
        self._ended.add(source)
        if sink in self._ended:
            self._close(source)

    def _close(self, source: socket.socket) -> None:
        for sock in (source, self._peer[source]):
            if sock not in self._ended:
                self._selector.unregister(sock)
            self._ended.discard(sock)
            self._peer.pop(sock, None)
            sock.close()


def apply_limits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def join_cgroups(paths: list[str]) -> None:
    """Move this process into each cgroup (``cgroup.procs`` files) before it forks the
    snippet's process, which inherits them; the gateway made them and removes them."""
    for path in paths:
        _write(path, str(os.getpid()))


def enter(config: dict[str, Any], libc: Any) -> NoReturn:
    """In the snippet's process: the box, limits, lockdown, exec (never returns).

    ``unshare``: the minimal root and a full privilege drop before the exec (the harness never
    holds root or a capability). Other backends (bwrap made the root; none has none): the
    harness drops to the sandbox uid itself, after start-up, as before. Every backend gets
    NO_NEW_PRIVS and the seccomp filter, inherited by everything the snippet starts."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if config["backend"] == "unshare" and config["isolated"]:
        build_root(libc, config)
        drop_privileges(libc, config["uid"], config["gid"])
    apply_limits(config["rlimits"])
    os.chdir(config.get("cwd") or config["scratch"])
    install_filter(libc, config.get("seccomp_allow", ()), config.get("socket_domains", ()))
    os.execve(config["argv"][0], config["argv"], config["env"])


def supervise(child: int, wall_s: float, status: Status, relay: Relay | None = None) -> NoReturn:
    """Wait for the child (relaying its proxy connections meanwhile, when it has a relay);
    kill it on SIGTERM or after ``wall_s`` (0: no wall clock, for a long-lived server that
    lives as long as its connection)."""

    def kill_child(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        status.send(stopped=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, kill_child)
    signal.signal(signal.SIGALRM, kill_child)
    signal.setitimer(signal.ITIMER_REAL, wall_s)
    if relay is None:
        _, wait_status, usage = os.wait4(child, 0)
    else:
        wait_status, usage = relay.run(child)
    signal.setitimer(signal.ITIMER_REAL, 0)
    fields: dict[str, Any] = {
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "maxrss_kb": usage.ru_maxrss,
    }
    if os.WIFSIGNALED(wait_status):
        fields["signal"] = signal.Signals(os.WTERMSIG(wait_status)).name
    else:
        fields["exit"] = os.WEXITSTATUS(wait_status)
    status.send(**fields)
    os._exit(0)


def read_config(argv: list[str]) -> dict[str, Any]:
    """The JSON config: the first argument, or (``CONFIG_ENV``) the environment, which only
    this user can read in /proc, where a command line is anyone's: a tool server's
    configured environment (its API token) travels that way."""
    config: dict[str, Any] = json.loads(argv[1] if len(argv) > 1 else os.environ[CONFIG_ENV])
    return config


def main(argv: list[str]) -> NoReturn:
    config = read_config(argv)
    status_fd = config["status_fd"]
    if status_fd is not None:
        os.set_inheritable(int(status_fd), False)
    status = Status(None if status_fd is None else int(status_fd))
    libc = _libc()
    # The gateway gone, SIGTERM: the handler below kills the snippet on its way out.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if config["parent_pid"] is not None and os.getppid() != config["parent_pid"]:
        os._exit(1)
    try:
        problem = isolate(config, libc)
    except (OSError, AttributeError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    config["isolated"] = not problem
    status.send(isolated=not problem, problem=problem)
    if problem and not config["allow_without_isolation"]:
        status.send(refused=problem)
        if status_fd is None:
            sys.stderr.write(f"box refused: {problem}\n")
            sys.stderr.flush()
            os._exit(EXIT_CHILD_SETUP)
        os._exit(0)
    join_cgroups(config["cgroup_procs"])
    proxy: dict[str, Any] = config.get("proxy") or {}
    listener = proxy_listener(int(proxy["port"])) if proxy and config["isolated"] else None
    child = os.fork()
    if child == 0:
        try:
            enter(config, libc)
        except BaseException as exc:  # noqa: BLE001 - report and leave without running anything
            sys.stderr.write(f"sandbox setup failed: {type(exc).__name__}: {exc}\n")
            sys.stderr.flush()
        os._exit(EXIT_CHILD_SETUP)
    relay = Relay(listener, proxy["unix"]) if listener is not None else None
    supervise(child, float(config["wall_s"]), status, relay)


if __name__ == "__main__":
    main(sys.argv)
