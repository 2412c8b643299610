"""The first process of a sandbox run, passed to ``python -I -S -c`` with a JSON config.

Standalone (stdlib only, no ``__future__`` import). As the gateway's user it:

1. makes new network, PID, mount and IPC namespaces (``unshare`` backend; under bwrap it only
   checks the ones bwrap made) and verifies the network namespace really is a new one, with
   no interface but loopback; when it cannot, it refuses unless told to run without;
2. forks the snippet's process, which mounts a private ``/proc``, tmpfs over ``/tmp`` and the
   other world-writable directories and a size-capped tmpfs as its scratch directory, applies
   the rlimits and execs the harness. It is PID 1 of its own namespace: when it exits, the
   kernel kills every process it left behind;
3. waits, kills the snippet's process on SIGTERM (the gateway's time-out or death) or when its
   own wall-clock alarm fires, and reports the outcome as JSON lines on the status descriptor,
   which the snippet never holds.
"""

import ctypes
import json
import os
import resource
import signal
import socket
import sys
from typing import Any, NoReturn

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 0x40000
PR_SET_PDEATHSIG = 1
EXIT_CHILD_SETUP = 127


class Status:
    """JSON lines to the gateway; each write is one small, atomic pipe write."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def send(self, **fields: Any) -> None:
        os.write(self._fd, (json.dumps(fields) + "\n").encode())


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _netns() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def unshare(libc: Any) -> str:
    """New namespaces for this process (network, mount, IPC) and its children (PID); ''
    when done, else why not. Without root, a user namespace maps our own uid."""
    flags = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC
    uid, gid = os.getuid(), os.getgid()
    if uid != 0:
        flags |= CLONE_NEWUSER
    if libc.unshare(flags) != 0:
        return f"unshare failed: {os.strerror(ctypes.get_errno())}"
    if uid != 0:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
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
        problem = unshare(libc)
        if problem:
            return problem
    return verify_network(config["host_netns"])


def apply_limits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def _mount(
    libc: Any, source: bytes, target: str, fstype: bytes | None, flags: int, data: str
) -> None:
    if libc.mount(source, target.encode(), fstype, flags, data.encode() if data else None) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mounting {target} failed: {os.strerror(errno)}")


def private_mounts(config: dict[str, Any], libc: Any) -> None:
    """In the new mount namespace (nothing here reaches the host's): a /proc that shows only
    this PID namespace, empty size-capped tmpfs over the world-writable directories, and the
    scratch directory as a tmpfs of its own (its size is the run's whole disk)."""
    _mount(libc, b"none", "/", None, MS_REC | MS_PRIVATE, "")
    _mount(libc, b"proc", "/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "")
    for directory in config["hide_dirs"]:
        if os.path.isdir(directory) and not os.path.islink(directory):
            _mount(libc, b"tmpfs", directory, b"tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=1777")
    scratch = config["scratch"]
    os.makedirs(scratch, mode=0o700, exist_ok=True)
    options = f"size={config['scratch_mb']}m,mode=0700,uid={config['uid']},gid={config['gid']}"
    _mount(libc, b"tmpfs", scratch, b"tmpfs", MS_NOSUID | MS_NODEV, options)
    os.chdir(scratch)


def enter(config: dict[str, Any], libc: Any) -> NoReturn:
    """In the snippet's process: private mounts, limits, exec the harness (never returns)."""
    if config["backend"] == "unshare" and config["isolated"]:
        private_mounts(config, libc)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    apply_limits(config["rlimits"])
    os.execv(config["argv"][0], config["argv"])


def supervise(child: int, wall_s: float, status: Status) -> NoReturn:
    def kill_child(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        status.send(stopped=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, kill_child)
    signal.signal(signal.SIGALRM, kill_child)
    signal.setitimer(signal.ITIMER_REAL, wall_s)
    _, wait_status, usage = os.wait4(child, 0)
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


def main(argv: list[str]) -> NoReturn:
    config = json.loads(argv[1])
    status_fd = int(config["status_fd"])
    os.set_inheritable(status_fd, False)
    status = Status(status_fd)
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
        os._exit(0)
    child = os.fork()
    if child == 0:
        try:
            enter(config, libc)
        except BaseException as exc:  # noqa: BLE001 - report and leave without running anything
            sys.stderr.write(f"sandbox setup failed: {type(exc).__name__}: {exc}\n")
            sys.stderr.flush()
        os._exit(EXIT_CHILD_SETUP)
    supervise(child, float(config["wall_s"]), status)


if __name__ == "__main__":
    main(sys.argv)
