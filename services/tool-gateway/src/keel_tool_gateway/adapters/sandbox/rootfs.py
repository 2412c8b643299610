"""The box's filesystem and privileges, applied in the run's first process before it execs.

Standalone (stdlib only, no ``__future__`` import): joined with ``seccomp.py`` and
``launcher.py`` into the launcher's program text. In a private mount namespace it:

1. mounts a fresh tmpfs as the new root and fills it with read-only, nosuid, nodev bind
   mounts of exactly the paths it is given (the interpreter's prefix, the system libraries,
   any extra read-only directories), writable binds of the given directories, empty
   read-only tmpfs over the masked directories (installed packages), a private
   ``/proc`` of the run's PID namespace, a ``/dev`` holding only null, zero, random and
   urandom, and the scratch tmpfs capped in bytes and in inodes;
2. ``pivot_root(2)``s into it and detaches the old root, so no path leads back to the host
   (not ``chroot``: a chroot keeps the old root reachable to anything that can chroot again
   or holds a directory descriptor), then makes the new root read-only;
3. drops privileges for good: the capability bounding set, supplementary groups, the uid and
   gid, then every remaining capability and the ambient set.
"""

import ctypes
import os
from typing import Any

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MNT_DETACH = 0x2
# statvfs f_flag bits (ST_*) to the mount flags a remount must keep: in a user namespace the
# kernel refuses a remount that would clear a flag the original mount was locked with.
LOCKED_FLAGS = (
    (os.ST_RDONLY, MS_RDONLY),
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)
DEVICES = ("null", "zero", "random", "urandom")
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
# SECBIT_NOROOT | SECBIT_NOROOT_LOCKED: uid 0 gains no capabilities by execve.
SECUREBITS_NOROOT = 0x3
LINUX_CAPABILITY_VERSION_3 = 0x20080522
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
ROOT_TMPFS = "size=1m,nr_inodes=512,mode=0755"


def _mount(libc: Any, source: str, target: str, fstype: str, flags: int, data: str) -> None:
    result = libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mounting {target} failed: {os.strerror(code)}")


def _locked_flags(path: str) -> int:
    found = os.statvfs(path).f_flag
    return sum(ms for st, ms in LOCKED_FLAGS if found & st)


def _placeholder(root: str, path: str, directory: bool) -> str:
    """The mount point for host ``path`` inside ``root``; the same path, parents 0755."""
    target = root + path
    os.makedirs(target if directory else os.path.dirname(target), mode=0o755, exist_ok=True)
    if not directory and not os.path.exists(target):
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    return target


def bind(libc: Any, root: str, path: str, writable: bool) -> None:
    """Bind host ``path`` at the same path under ``root``: nosuid, nodev, read-only unless
    ``writable``. A symlink (``/lib`` -> ``usr/lib``) is recreated, not followed."""
    if os.path.islink(path):
        target = root + path
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(path), target)
        return
    if not os.path.exists(path):
        return
    target = _placeholder(root, path, os.path.isdir(path))
    _mount(libc, path, target, "", MS_BIND, "")
    flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | _locked_flags(path)
    if not writable:
        flags |= MS_RDONLY
    _mount(libc, "", target, "", flags, "")


def mask(libc: Any, root: str, path: str) -> None:
    """Cover a directory inside a bound tree with an empty read-only tmpfs (installed
    packages under the interpreter's prefix: readable code that is not the standard library)."""
    target = root + path
    if os.path.isdir(target) and not os.path.islink(target):
        flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
        _mount(libc, "tmpfs", target, "tmpfs", flags, "size=4k,nr_inodes=4,mode=0555")


def make_dev(libc: Any, root: str) -> None:
    """/dev with the four harmless character devices (bound, nothing created with mknod)."""
    dev = root + "/dev"
    os.makedirs(dev, mode=0o755, exist_ok=True)
    _mount(libc, "tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755")
    for name in DEVICES:
        target = f"{dev}/{name}"
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o666))
        _mount(libc, f"/dev/{name}", target, "", MS_BIND, "")
    for name, link in DEV_LINKS.items():
        os.symlink(link, f"{dev}/{name}")
    flags = MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC
    _mount(libc, "tmpfs", dev, "tmpfs", flags, "size=64k,nr_inodes=64,mode=0755")


def pivot(libc: Any, root: str, machine: str) -> None:
    """Make ``root`` the root of this mount namespace and detach the old one entirely."""
    os.chdir(root)
    if libc.syscall(SYS_PIVOT_ROOT[machine], b".", b".") != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"pivot_root failed: {os.strerror(code)}")
    if libc.umount2(b".", MNT_DETACH) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"detaching the old root failed: {os.strerror(code)}")
    os.chdir("/")


def build_root(libc: Any, config: dict[str, Any]) -> None:
    """The minimal root (see the module's docstring); the process is in it on return."""
    root = config["new_root"]
    _mount(libc, "none", "/", "", MS_REC | MS_PRIVATE, "")
    os.makedirs(root, mode=0o700, exist_ok=True)
    _mount(libc, "tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, ROOT_TMPFS)
    for path in config["ro_binds"]:
        bind(libc, root, path, writable=False)
    for path in config["rw_binds"]:
        bind(libc, root, path, writable=True)
    for path in config.get("masks", ()):
        mask(libc, root, path)
    os.makedirs(root + "/proc", mode=0o555)
    _mount(libc, "proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "")
    make_dev(libc, root)
    scratch = root + config["scratch"]
    os.makedirs(scratch, mode=0o755, exist_ok=True)
    options = (
        f"size={config['scratch_bytes']},nr_inodes={config['scratch_inodes']},mode=0700,"
        f"uid={config['uid']},gid={config['gid']}"
    )
    _mount(libc, "tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, options)
    pivot(libc, root, os.uname().machine)
    _mount(libc, "", "/", "", MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, ROOT_TMPFS)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            return int(handle.read())
    except OSError:
        return 63


def _setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups") as handle:
            return handle.read().strip() == "deny"
    except OSError:
        return False


def drop_privileges(libc: Any, uid: int, gid: int) -> None:
    """For good: no capability can come back (bounding set empty, securebits locked, every
    set cleared), no supplementary group, and real = effective = saved = ``uid``/``gid``."""
    if libc.prctl(PR_SET_SECUREBITS, SECUREBITS_NOROOT, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setting securebits failed: {os.strerror(code)}")
    for cap in range(_last_capability() + 1):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"dropping capability {cap} failed: {os.strerror(code)}")
    try:
        os.setgroups([])
    except PermissionError:
        # A non-root gateway's user namespace denies setgroups(2) (the kernel requires it
        # before an unprivileged gid map); the groups it started with stay, unmapped.
        if not _setgroups_denied():
            raise
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    empty = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), empty) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"clearing capabilities failed: {os.strerror(code)}")
