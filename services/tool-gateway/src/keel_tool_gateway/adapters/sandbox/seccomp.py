"""The sandbox's seccomp filter: a classic-BPF program we write ourselves, installed with
``prctl(PR_SET_SECCOMP)`` through ctypes.

Standalone (stdlib only, no ``__future__`` import): the launcher's program text is this file,
``rootfs.py`` and ``launcher.py`` joined, run with ``python -I -S`` where no package of the
gateway can be imported. Why our own BPF and not libseccomp: the python binding is not on
PyPI, the C library is not on every image, and a deny-list of ~60 numbers per architecture
is small enough to read (docs/adr/0009-sandbox-os-boundary.md).

The program: kill the process unless the architecture is one we have a table for (a 32-bit
or x32 syscall ABI would otherwise reach the kernel with other numbers); refuse x32 numbers;
answer EPERM to every syscall in the table; ``clone`` with any namespace flag gets EPERM;
``clone3`` gets ENOSYS, so libc falls back to ``clone`` (its flags are in memory, which a
classic filter cannot read); everything else is allowed.
"""

import ctypes
import errno as _errno
from collections.abc import Collection
from typing import Any

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# The numbers of the refused syscalls per architecture. x86_64: the kernel's
# arch/x86/entry/syscalls/syscall_64.tbl (the "common"/"64" rows); aarch64: the generic table,
# include/uapi/asm-generic/unistd.h (aarch64 is not exercised by the suite on this machine).
DENIED_SYSCALLS: dict[int, dict[str, int]] = {
    AUDIT_ARCH_X86_64: {
        "socket": 41,
        "socketpair": 53,
        "ptrace": 101,
        "syslog": 103,
        "uselib": 134,
        "personality": 135,
        "modify_ldt": 154,
        "pivot_root": 155,
        "chroot": 161,
        "acct": 163,
        "mount": 165,
        "umount2": 166,
        "swapon": 167,
        "swapoff": 168,
        "reboot": 169,
        "sethostname": 170,
        "setdomainname": 171,
        "iopl": 172,
        "ioperm": 173,
        "init_module": 175,
        "delete_module": 176,
        "quotactl": 179,
        "kexec_load": 246,
        "add_key": 248,
        "request_key": 249,
        "keyctl": 250,
        "unshare": 272,
        "perf_event_open": 298,
        "fanotify_init": 300,
        "name_to_handle_at": 303,
        "open_by_handle_at": 304,
        "setns": 308,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "kcmp": 312,
        "finit_module": 313,
        "kexec_file_load": 320,
        "bpf": 321,
        "userfaultfd": 323,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "pidfd_getfd": 438,
        "mount_setattr": 442,
    },
    AUDIT_ARCH_AARCH64: {
        "socket": 198,
        "socketpair": 199,
        "ptrace": 117,
        "syslog": 116,
        "personality": 92,
        "pivot_root": 41,
        "chroot": 51,
        "acct": 89,
        "mount": 40,
        "umount2": 39,
        "swapon": 224,
        "swapoff": 225,
        "reboot": 142,
        "sethostname": 161,
        "setdomainname": 162,
        "init_module": 105,
        "delete_module": 106,
        "quotactl": 60,
        "kexec_load": 104,
        "add_key": 217,
        "request_key": 218,
        "keyctl": 219,
        "unshare": 97,
        "perf_event_open": 241,
        "fanotify_init": 262,
        "name_to_handle_at": 264,
        "open_by_handle_at": 265,
        "setns": 268,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "kcmp": 272,
        "finit_module": 273,
        "kexec_file_load": 294,
        "bpf": 280,
        "userfaultfd": 282,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "pidfd_getfd": 438,
        "mount_setattr": 442,
    },
}
# clone and clone3, per architecture (same sources).
CLONE_SYSCALLS: dict[int, tuple[int, int]] = {
    AUDIT_ARCH_X86_64: (56, 435),
    AUDIT_ARCH_AARCH64: (220, 435),
}
# Every namespace flag clone(2) takes (CLONE_NEWTIME is clone3/unshare only).
CLONE_NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little endian).
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARG0_LOW = 16
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

Instruction = tuple[int, int, int, int]


def _ret(value: int) -> Instruction:
    return (BPF_RET_K, 0, 0, value)


def _socket_check(arch: int, domains: Collection[int]) -> list[Instruction]:
    """``socket`` allowed for the given address families (its first argument) only."""
    eperm = _ret(SECCOMP_RET_ERRNO | _errno.EPERM)
    allowed = sorted(set(domains))
    checks: list[Instruction] = []
    for index, domain in enumerate(allowed):
        # Matched: jump over the remaining checks and the EPERM to the ALLOW.
        checks.append((BPF_JEQ_K, len(allowed) - index, 0, domain))
    block = [(BPF_LD_W_ABS, 0, 0, OFFSET_ARG0_LOW), *checks, eperm, _ret(SECCOMP_RET_ALLOW)]
    return [(BPF_JEQ_K, 0, len(block), DENIED_SYSCALLS[arch]["socket"]), *block]


def _arch_section(
    arch: int, allow: Collection[str] = (), socket_domains: Collection[int] = ()
) -> list[Instruction]:
    """The checks for one architecture, entered with the syscall number loaded."""
    eperm = _ret(SECCOMP_RET_ERRNO | _errno.EPERM)
    body: list[Instruction] = []
    if arch == AUDIT_ARCH_X86_64:
        body += [(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT), eperm]
    if socket_domains:
        body += _socket_check(arch, socket_domains)
        allow = {*allow, "socket"}
    denied = (number for name, number in DENIED_SYSCALLS[arch].items() if name not in allow)
    for number in sorted(denied):
        body += [(BPF_JEQ_K, 0, 1, number), eperm]
    clone, clone3 = CLONE_SYSCALLS[arch]
    body += [(BPF_JEQ_K, 0, 1, clone3), _ret(SECCOMP_RET_ERRNO | _errno.ENOSYS)]
    body += [
        (BPF_JEQ_K, 0, 3, clone),
        (BPF_LD_W_ABS, 0, 0, OFFSET_ARG0_LOW),
        (BPF_JSET_K, 0, 1, CLONE_NAMESPACE_FLAGS),
        eperm,
        _ret(SECCOMP_RET_ALLOW),
    ]
    return body


def build_program(
    allow: Collection[str] = (), socket_domains: Collection[int] = ()
) -> list[Instruction]:
    """The whole filter: dispatch on the architecture, kill on one we have no table for.

    ``allow`` names entries of the table to let through after all (``socketpair`` for a
    program that runs an event loop: asyncio's wake-up pipe is a socketpair, which the kernel
    only makes as AF_UNIX and unconnected to anything else). ``socket_domains``: ``socket``
    is allowed for these address families only (AF_INET for a program whose network
    namespace holds nothing but a loopback with the gateway's proxy forwarder on it). The
    sandbox allows none of either."""
    unknown = set(allow) - set(DENIED_SYSCALLS[AUDIT_ARCH_X86_64])
    if unknown:
        raise ValueError(f"not in the seccomp table: {sorted(unknown)}")
    program: list[Instruction] = [(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH)]
    x86 = _arch_section(AUDIT_ARCH_X86_64, allow, socket_domains)
    arm = _arch_section(AUDIT_ARCH_AARCH64, allow, socket_domains)
    load_nr = (BPF_LD_W_ABS, 0, 0, OFFSET_NR)
    # arch == x86_64: fall into its section; else jump over it (and its load) to the next test.
    program.append((BPF_JEQ_K, 0, len(x86) + 1, AUDIT_ARCH_X86_64))
    program += [load_nr, *x86]
    program.append((BPF_JEQ_K, 0, len(arm) + 1, AUDIT_ARCH_AARCH64))
    program += [load_nr, *arm]
    program.append(_ret(SECCOMP_RET_KILL_PROCESS))
    return program


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def install_filter(
    libc: Any, allow: Collection[str] = (), socket_domains: Collection[int] = ()
) -> None:
    """NO_NEW_PRIVS (required for an unprivileged filter, and setuid files stop working),
    then the filter (less ``allow`` and ``socket_domains``, see ``build_program``); both are
    inherited by every child and kept across execve."""
    program = build_program(allow, socket_domains)
    if any(jt > 255 or jf > 255 for _, jt, jf, _ in program):
        raise OSError(_errno.E2BIG, "seccomp program jump out of range")
    table = (_SockFilter * len(program))(*(_SockFilter(*ins) for ins in program))
    fprog = _SockFprog(len(program), table)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"PR_SET_NO_NEW_PRIVS failed: {_errno.errorcode.get(code)}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"installing the seccomp filter failed: {_errno.errorcode.get(code)}")
