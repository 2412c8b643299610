"""OS-layer escape probes: each one a snippet that tries one way out, and a check, run on the
host afterwards, that the attempted effect is absent (a file not written, a connection not
accepted, a secret not in the output). The Python layer is off for all of them.

The same probes run twice: with the gateway as root (in the test process) and with the
gateway as an unprivileged user (``python probes.py CONFIG`` started as root: it makes its own
mount namespace where the interpreter and the repository are reachable by that user, drops
to the user for good, then runs every probe and prints the outcomes as JSON).
"""

import asyncio
import ctypes
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ctypes/libc prologue shared by the syscall probes: r = the raw return value, e = errno.
SYSCALL = (
    "import ctypes, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.syscall.restype = ctypes.c_long\n"
    "def sc(*args):\n"
    "    r = libc.syscall(*[ctypes.c_long(a) if isinstance(a, int) else a for a in args])\n"
    "    return r, ctypes.get_errno()\n"
)


@dataclass(frozen=True)
class Outcome:
    """What the gateway got back from one run: its stdout, or the error's message."""

    ok: bool
    text: str


Check = Callable[[dict[str, Any], Outcome], None]


@dataclass(frozen=True)
class Probe:
    name: str
    code: Callable[[dict[str, Any]], str]
    check: Check


def _write_code(path: str, marker: str, mode: str = "a") -> str:
    return (
        "import os\n"
        f"p = {path!r}\n"
        "try:\n    os.makedirs(os.path.dirname(p), exist_ok=True)\nexcept OSError:\n    pass\n"
        f"try:\n    open(p, {mode!r}).write({marker!r})\n    print('wrote')\n"
        "except OSError as e:\n    print('refused', e.errno)\n"
    )


def _host_lacks(path: str, marker: str) -> None:
    """The host file is absent, or does not contain the marker."""
    target = Path(path)
    if target.is_file():
        assert marker not in target.read_text(errors="replace"), f"{path} was written"
    else:
        assert not target.exists(), f"{path} was created"


def write_probe(name: str, path_of: Callable[[dict[str, Any]], str]) -> Probe:
    def code(ctx: dict[str, Any]) -> str:
        return _write_code(path_of(ctx), ctx["marker"])

    def check(ctx: dict[str, Any], outcome: Outcome) -> None:
        _host_lacks(path_of(ctx), ctx["marker"])
        assert "wrote" not in outcome.text

    return Probe(name, code, check)


def read_probe(name: str, path_of: Callable[[dict[str, Any]], str]) -> Probe:
    """Reads a host file; the check: none of its content came back."""

    def code(ctx: dict[str, Any]) -> str:
        return (
            f"try:\n    print(open({path_of(ctx)!r}, 'rb').read()[:4096])\n"
            "except OSError as e:\n    print('refused', e.errno)\n"
        )

    def check(ctx: dict[str, Any], outcome: Outcome) -> None:
        content = Path(path_of(ctx)).read_bytes()[:4096]
        for line in content.splitlines()[:8]:
            if len(line.strip()) >= 6:
                assert repr(line.strip())[2:-1][:40] not in outcome.text, "host content leaked"

    return Probe(name, code, check)


def refused_probe(name: str, body: str) -> Probe:
    """A syscall (or several) that must not succeed: the snippet prints ESCAPED when one
    does, so the check fails exactly when the effect happened."""

    def code(_ctx: dict[str, Any]) -> str:
        return SYSCALL + body

    def check(_ctx: dict[str, Any], outcome: Outcome) -> None:
        assert "ESCAPED" not in outcome.text, outcome.text

    return Probe(name, code, check)


def _no_connection(key: str) -> Check:
    def check(ctx: dict[str, Any], outcome: Outcome) -> None:
        assert key not in ctx["accepted"](), f"{key}: the test's listener got a connection"
        assert "connected" not in outcome.text

    return check


def connect_probe(
    name: str, key: str, family: str, address_of: Callable[[dict[str, Any]], Any]
) -> Probe:
    def code(ctx: dict[str, Any]) -> str:
        return (
            "import socket\n"
            f"try:\n    s = socket.socket(socket.{family}, socket.SOCK_STREAM)\n"
            f"    s.settimeout(2)\n    s.connect({address_of(ctx)!r})\n    print('connected')\n"
            "except OSError as e:\n    print('refused', e.errno)\n"
        )

    return Probe(name, code, _no_connection(key))


def _secret_absent(ctx: dict[str, Any], outcome: Outcome) -> None:
    assert ctx["secret"] not in outcome.text, "the gateway's secret leaked"
    assert ctx["argv_marker"] not in outcome.text, "the gateway's command line leaked"


def _count_below(limit_key: str) -> Check:
    def check(ctx: dict[str, Any], outcome: Outcome) -> None:
        numbers = [int(word) for word in outcome.text.split() if word.isdigit()]
        assert numbers, outcome.text
        assert numbers[0] <= ctx[limit_key], f"{numbers[0]} > {ctx[limit_key]}"

    return check


def _listing_check(ctx: dict[str, Any], outcome: Outcome) -> None:
    for name in ("etc", "home", "var", "run", "sys", "work", "opt", "srv", "mnt", "boot"):
        assert f"'{name}'" not in outcome.text, f"/{name} is visible"


def _packages_hidden(ctx: dict[str, Any], outcome: Outcome) -> None:
    for directory in (ctx["prefix_site_packages"], "/usr/lib/python3/dist-packages"):
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if len(name) > 3:
                    assert f"'{name}'" not in outcome.text, f"{directory}/{name} is visible"


def _setuid_check(_ctx: dict[str, Any], outcome: Outcome) -> None:
    assert "euid 0" not in outcome.text, outcome.text
    assert "euid" in outcome.text or "refused" in outcome.text, outcome.text


def _nothing_left(ctx: dict[str, Any], outcome: Outcome) -> None:
    assert "ESCAPED" not in outcome.text, outcome.text


def _memory_check(ctx: dict[str, Any], outcome: Outcome) -> None:
    """The hogs each fit their own RLIMIT_AS; together they must not fit the run's memory."""
    words = outcome.text.split()
    holding = int(words[words.index("holding") + 1]) if "holding" in words else 0
    assert holding < ctx["hogs"], f"all {holding} hogs hold their memory: no total bound"


def _hostname_check(ctx: dict[str, Any], outcome: Outcome) -> None:
    assert os.uname().nodename != "keel-escaped", "the host's hostname changed"


HOME = lambda ctx: ctx["home"]  # noqa: E731
SITE = lambda ctx: ctx["site_packages"]  # noqa: E731
PY = f"python{sys.version_info.major}.{sys.version_info.minor}"

PROBES: list[Probe] = [
    # Writes outside the scratch directory (each path unique to the run, or appended to).
    write_probe("write-tmp", lambda c: f"/tmp/keel-escape-{c['tag']}"),
    write_probe("write-var-tmp", lambda c: f"/var/tmp/keel-escape-{c['tag']}"),
    write_probe("write-dev-shm", lambda c: f"/dev/shm/keel-escape-{c['tag']}"),
    write_probe("write-run-lock", lambda c: f"/run/lock/keel-escape-{c['tag']}"),
    write_probe("write-etc", lambda c: f"/etc/keel-escape-{c['tag']}"),
    write_probe("write-etc-cron", lambda c: f"/etc/cron.d/keel-escape-{c['tag']}"),
    write_probe("write-usr-lib", lambda c: f"/usr/lib/keel-escape-{c['tag']}"),
    write_probe("write-usr-local-bin", lambda c: f"/usr/local/bin/keel-escape-{c['tag']}"),
    write_probe("write-root", lambda c: f"/root/keel-escape-{c['tag']}"),
    write_probe("write-home", lambda c: f"/home/keel-escape-{c['tag']}"),
    write_probe("write-var-lib", lambda c: f"/var/lib/keel-escape-{c['tag']}"),
    write_probe("write-prefix", lambda c: f"{c['prefix']}/keel-escape-{c['tag']}"),
    write_probe("write-gateway-source", lambda c: f"{c['source_dir']}/keel-escape-{c['tag']}"),
    write_probe("write-repo-root", lambda c: f"{c['repo']}/keel-escape-{c['tag']}"),
    write_probe("write-trust-dir", lambda c: f"{c['trust_dir']}/keel-escape-{c['tag']}"),
    write_probe("write-scratch-parent", lambda c: f"{c['scratch_root']}/keel-escape-{c['tag']}"),
    # Persistence: code that would run later, outside any sandbox.
    write_probe("persist-bashrc", lambda c: f"{HOME(c)}/.bashrc"),
    write_probe("persist-profile", lambda c: f"{HOME(c)}/.profile"),
    write_probe(
        "persist-user-site-pth",
        lambda c: f"{HOME(c)}/.local/lib/{PY}/site-packages/keel-escape-{c['tag']}.pth",
    ),
    write_probe("persist-venv-pth", lambda c: f"{SITE(c)}/keel-escape-{c['tag']}.pth"),
    write_probe("persist-venv-sitecustomize", lambda c: f"{SITE(c)}/sitecustomize.py"),
    write_probe(
        "persist-prefix-pth",
        lambda c: f"{c['prefix']}/lib/{PY}/site-packages/keel-escape-{c['tag']}.pth",
    ),
    write_probe(
        "persist-prefix-sitecustomize", lambda c: f"{c['prefix']}/lib/{PY}/sitecustomize.py"
    ),
    write_probe("persist-prefix-os-module", lambda c: f"{c['prefix']}/lib/{PY}/os.py"),
    # Reading the host's files.
    read_probe("read-etc-shadow", lambda c: "/etc/shadow"),
    read_probe("read-etc-passwd", lambda c: "/etc/passwd"),
    read_probe("read-gateway-source", lambda c: c["gateway_source"]),
    read_probe("read-trust-dir", lambda c: c["trust_file"]),
    read_probe("read-bashrc-of-gateway-user", lambda c: f"{HOME(c)}/.bashrc"),
    read_probe("read-venv-config", lambda c: c["venv_cfg"]),
    Probe(
        "list-installed-packages",
        lambda c: (
            "import os\n"
            f"for d in ({c['prefix_site_packages']!r}, '/usr/lib/python3/dist-packages'):\n"
            "    try:\n        print(sorted(os.listdir(d)))\n"
            "    except OSError as e:\n        print('refused', e.errno)\n"
        ),
        _packages_hidden,
    ),
    Probe(
        "list-root",
        lambda c: "import os\nprint(sorted(os.listdir('/')))",
        _listing_check,
    ),
    Probe(
        "proc-every-environ-and-cmdline",
        lambda c: (
            "import os\nfor p in os.listdir('/proc'):\n"
            "    for f in ('environ', 'cmdline'):\n"
            "        try:\n            print(open(f'/proc/{p}/{f}', 'rb').read())\n"
            "        except OSError:\n            pass\n"
        ),
        _secret_absent,
    ),
    Probe(
        "proc-gateway-pid",
        lambda c: (
            f"for f in ('environ', 'cmdline', 'status'):\n"
            f"    try:\n        print(open('/proc/{c['gateway_pid']}/' + f, 'rb').read())\n"
            "    except OSError as e:\n        print('refused', e.errno)\n"
        ),
        _secret_absent,
    ),
    Probe("own-environment", lambda c: "import os\nprint(dict(os.environ))", _secret_absent),
    # Network and local sockets the test opens.
    connect_probe("tcp-loopback", "tcp", "AF_INET", lambda c: ("127.0.0.1", c["tcp_port"])),
    connect_probe("tcp-any-address", "tcp", "AF_INET", lambda c: ("0.0.0.0", c["tcp_port"])),
    connect_probe("unix-socket-file", "unix", "AF_UNIX", lambda c: c["unix_path"]),
    connect_probe("unix-socket-abstract", "abstract", "AF_UNIX", lambda c: c["abstract"]),
    refused_probe(
        "socket-raw-syscall",
        "for fam in (1, 2, 10, 16, 17):\n"
        "    r, e = sc(41, fam, 1, 0)\n"
        "    if r >= 0:\n        print('ESCAPED', fam)\n",
    ),
    refused_probe(
        "socketpair",
        "import socket\ntry:\n    socket.socketpair()\n    print('ESCAPED')\n"
        "except OSError:\n    pass\n",
    ),
    # Privilege.
    Probe(
        "setuid-binary",
        lambda c: (
            "import subprocess\ntry:\n"
            f"    out = subprocess.run([{c['setuid_python']!r}, '-I', '-S', '-c', "
            "'import os; print(\"euid\", os.geteuid())'], capture_output=True, text=True)\n"
            "    print(out.stdout, out.stderr)\n"
            "except OSError as e:\n    print('refused', e.errno)\n"
        ),
        _setuid_check,
    ),
    refused_probe(
        "become-root", "try:\n    os.setuid(0)\n    print('ESCAPED')\nexcept OSError:\n    pass\n"
    ),
    refused_probe(
        "capabilities",
        "caps = [l for l in open('/proc/self/status') if l.startswith('Cap')]\n"
        "if any(int(l.split()[1], 16) for l in caps):\n    print('ESCAPED', caps)\n",
    ),
    refused_probe(
        "user-namespace",
        "for flag in (0x10000000, 0x10000000 | 0x20000):\n"
        "    if libc.unshare(flag) == 0:\n        print('ESCAPED', flag)\n",
    ),
    refused_probe(
        "unshare-other-namespaces",
        "for flag in (0x20000, 0x40000000, 0x20000000, 0x04000000, 0x08000000, 0x02000000):\n"
        "    if libc.unshare(flag) == 0:\n        print('ESCAPED', flag)\n",
    ),
    refused_probe(
        "setns",
        "for ns in ('net', 'mnt', 'pid', 'user'):\n"
        "    try:\n        fd = os.open(f'/proc/self/ns/{ns}', os.O_RDONLY)\n"
        "    except OSError:\n        continue\n"
        "    if libc.setns(fd, 0) == 0:\n        print('ESCAPED', ns)\n",
    ),
    refused_probe(
        "clone-new-user",
        "r, e = sc(56, 0x10000000 | 17, 0, 0, 0, 0)\n"
        "if r == 0:\n    os._exit(0)\n"
        "if r > 0:\n    print('ESCAPED')\n",
    ),
    refused_probe(
        "clone3",
        "buf = ctypes.create_string_buffer(88)\nr, e = sc(435, buf, 88)\n"
        "if r == 0:\n    os._exit(0)\nif r > 0 or e != 38:\n    print('ESCAPED', r, e)\n",
    ),
    refused_probe(
        "mount",
        "for src, tgt, fs in ((b'none', b'.', b'tmpfs'), (b'proc', b'/proc', b'proc'),"
        " (b'/', b'.', None)):\n"
        "    if libc.mount(src, tgt, fs, 0x1000 if fs is None else 0, None) == 0:\n"
        "        print('ESCAPED', tgt)\n",
    ),
    refused_probe(
        "umount-and-pivot",
        "if libc.umount2(b'/proc', 2) == 0:\n    print('ESCAPED umount')\n"
        "if sc(155, b'.', b'.')[0] == 0:\n    print('ESCAPED pivot')\n"
        "if libc.chroot(b'.') == 0:\n    print('ESCAPED chroot')\n",
    ),
    refused_probe(
        "ptrace-sibling",
        "import time\npid = os.fork()\n"
        "if pid == 0:\n    time.sleep(5)\n    os._exit(0)\n"
        "if libc.ptrace(16, pid, 0, 0) == 0:\n    print('ESCAPED')\n"
        "buf = ctypes.create_string_buffer(8)\n"
        "if sc(310, pid, buf, 1, buf, 1, 0)[0] >= 0:\n    print('ESCAPED vm_readv')\n"
        "os.kill(pid, 9)\n",
    ),
    refused_probe("ptrace-traceme", "if libc.ptrace(0, 0, 0, 0) == 0:\n    print('ESCAPED')\n"),
    refused_probe(
        "keyctl-and-keys",
        "if sc(250, 0, -3, 0)[0] >= 0:\n    print('ESCAPED keyctl')\n"
        "if sc(248, b'user', b'k', b'v', 1, -3)[0] >= 0:\n    print('ESCAPED add_key')\n"
        "if sc(249, b'user', b'k', None, 0)[0] >= 0:\n    print('ESCAPED request_key')\n",
    ),
    refused_probe(
        "bpf",
        "attr = ctypes.create_string_buffer(128)\n"
        "if sc(321, 0, attr, 128)[0] >= 0:\n    print('ESCAPED')\n",
    ),
    refused_probe(
        "perf-event-open",
        "attr = ctypes.create_string_buffer(128)\n"
        "if sc(298, attr, 0, -1, -1, 0)[0] >= 0:\n    print('ESCAPED')\n",
    ),
    refused_probe(
        "io-uring",
        "params = ctypes.create_string_buffer(120)\n"
        "if sc(425, 4, params)[0] >= 0:\n    print('ESCAPED')\n",
    ),
    refused_probe("userfaultfd", "if sc(323, 0)[0] >= 0:\n    print('ESCAPED')\n"),
    refused_probe(
        "kernel-modules-and-kexec",
        "for args in ((175, 0, 0, b''), (313, 0, b'', 0), (176, b'x', 0), (246, 0, 0, 0, 0),"
        " (320, -1, -1, 0, b'', 0)):\n"
        "    r, e = sc(*args)\n"
        "    if r >= 0 or e != 1:\n        print('ESCAPED', args[0], e)\n",
    ),
    refused_probe(
        "reboot-swap-acct",
        "for args in ((169, 0, 0, 0, 0), (167, b'/x', 0), (168, b'/x'), (163, b'/x')):\n"
        "    r, e = sc(*args)\n"
        "    if r >= 0 or e != 1:\n        print('ESCAPED', args[0], e)\n",
    ),
    refused_probe(
        "file-handles",
        "buf = ctypes.create_string_buffer(256)\nmount_id = ctypes.c_int()\n"
        "if sc(303, -100, b'/', buf, ctypes.byref(mount_id), 0)[0] >= 0:\n"
        "    print('ESCAPED name_to_handle_at')\n"
        "if sc(304, -100, buf, 0)[0] >= 0:\n    print('ESCAPED open_by_handle_at')\n",
    ),
    refused_probe("personality", "if sc(135, 0x0400000)[0] >= 0:\n    print('ESCAPED')\n"),
    refused_probe("x32-abi", "r, e = sc(0x40000000 | 39)\nif r >= 0:\n    print('ESCAPED', r)\n"),
    refused_probe(
        "kernel-log",
        "buf = ctypes.create_string_buffer(4096)\n"
        "if sc(103, 3, buf, 4096)[0] > 0:\n    print('ESCAPED')\n",
    ),
    Probe(
        "hostname",
        lambda c: SYSCALL + "libc.sethostname(b'keel-escaped', 12)\nprint(os.uname().nodename)",
        _hostname_check,
    ),
    refused_probe(
        "devices",
        "print(sorted(os.listdir('/dev')))\n"
        "for d in ('/dev/mem', '/dev/kmsg', '/dev/sda', '/dev/vda', '/dev/tty', '/dev/console'):\n"
        "    try:\n        os.close(os.open(d, os.O_RDONLY))\n        print('ESCAPED', d)\n"
        "    except OSError:\n        pass\n",
    ),
    refused_probe(
        "sysfs-and-cgroupfs",
        "for d in ('/sys/fs/cgroup', '/sys/kernel', '/proc/sys/kernel/core_pattern'):\n"
        "    if os.path.exists(d) and os.access(d, os.W_OK):\n        print('ESCAPED', d)\n",
    ),
    Probe(
        "kill-the-gateway",
        lambda c: (
            f"import os\ntry:\n    os.kill({c['gateway_pid']}, 0)\n    print('ESCAPED')\n"
            "except OSError as e:\n    print('refused', e.errno)\n"
        ),
        _nothing_left,
    ),
    # Limits.
    Probe(
        "many-small-files",
        lambda c: (
            "import os\nn = 0\ntry:\n    while n < 1_000_000:\n"
            "        open(f'f{n}', 'w').close()\n        n += 1\n"
            "except OSError as e:\n    print(n, e.errno)\n"
        ),
        _count_below("scratch_inodes"),
    ),
    Probe(
        "one-big-file",
        lambda c: (
            "n = 0\nblock = b'x' * (1 << 20)\ntry:\n    with open('big', 'wb') as f:\n"
            "        while n < (1 << 32):\n            f.write(block)\n            f.flush()\n"
            "            n += len(block)\n"
            "except OSError as e:\n    print(n, e.errno)\n"
        ),
        _count_below("scratch_bytes"),
    ),
    Probe(
        "fork-bomb",
        lambda c: (
            "import os, time\nn = 0\ntry:\n    while n < 10000:\n"
            "        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n"
            "        n += 1\n"
            "except OSError as e:\n    print(n, e.errno)\n"
        ),
        _count_below("max_processes"),
    ),
    Probe(
        "memory-hog-many-processes",
        lambda c: (
            # Each hog reports on a pipe once its memory is filled, then holds it; the parent
            # counts the hogs alive and filled once all reported or died (or 3 s passed).
            "import os, select, time\nkids = []\nr, w = os.pipe()\n"
            f"for _ in range({c['hogs']}):\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        try:\n"
            f"            data = b'x' * ({c['hog_mb']} << 20)\n"
            "            os.write(w, b'f')\n"
            "            time.sleep(30)\n"
            "        finally:\n            os._exit(0)\n"
            "    kids.append(pid)\n"
            "filled, dead, deadline = 0, set(), time.monotonic() + 3\n"
            "while filled + len(dead) < len(kids) and time.monotonic() < deadline:\n"
            "    if select.select([r], [], [], 0.05)[0]:\n        filled += len(os.read(r, 64))\n"
            "    dead |= {k for k in kids if k not in dead and os.waitpid(k, os.WNOHANG)[0]}\n"
            "alive = len(kids) - len(dead)\n"
            "print('holding', min(filled, alive), 'filled', filled, 'dead', len(dead))\n"
            "for k in set(kids) - dead:\n    os.kill(k, 9)\n"
        ),
        _memory_check,
    ),
    # Strings that evaluate to code, through the modules that evaluate them.
    Probe(
        "eval-through-singledispatch",
        lambda c: (
            "import functools\n@functools.singledispatch\ndef f(x):\n    pass\n"
            "def g(x: \"__import__('os').open('"
            + f"/tmp/keel-escape-sd-{c['tag']}"
            + "', 0o101) or int\"):\n    pass\n"
            "try:\n    f.register(g)\nexcept Exception as e:\n    print(type(e).__name__)\n"
        ),
        lambda c, o: _host_lacks(f"/tmp/keel-escape-sd-{c['tag']}", ""),
    ),
    Probe(
        "eval-through-typing",
        lambda c: (
            "import typing\n"
            "def g(x: \"open('" + f"/tmp/keel-escape-ty-{c['tag']}" + "', 'w')\"):\n    pass\n"
            "try:\n    typing.get_type_hints(g)\n"
            "except Exception as e:\n    print(type(e).__name__)\n"
        ),
        lambda c, o: _host_lacks(f"/tmp/keel-escape-ty-{c['tag']}", ""),
    ),
    Probe(
        "eval-through-exec",
        lambda c: "exec(\"open('" + f"/root/keel-escape-ex-{c['tag']}" + "', 'w')\")",
        lambda c, o: _host_lacks(f"/root/keel-escape-ex-{c['tag']}", ""),
    ),
    Probe(
        "eval-through-pickle",
        lambda c: (
            "import pickle, os\nclass P:\n    def __reduce__(self):\n"
            "        return (open, ('" + f"/tmp/keel-escape-pk-{c['tag']}" + "', 'w'))\n"
            "pickle.loads(pickle.dumps(P()))\n"
        ),
        lambda c, o: _host_lacks(f"/tmp/keel-escape-pk-{c['tag']}", ""),
    ),
]


def probe_names() -> list[str]:
    return [probe.name for probe in PROBES]


def codes(ctx: dict[str, Any]) -> dict[str, str]:
    return {probe.name: probe.code(ctx) for probe in PROBES}


async def run_probes(sandbox: Any, ctx: dict[str, Any]) -> dict[str, Outcome]:
    """Every probe through ``sandbox``, one after the other: name -> outcome."""
    from keel_tool_gateway.adapters.sandbox import SandboxError

    outcomes: dict[str, Outcome] = {}
    for name, code in codes(ctx).items():
        try:
            result = await sandbox.run(code)
        except SandboxError as exc:
            outcomes[name] = Outcome(False, str(exc))
        else:
            outcomes[name] = Outcome(True, result.stdout + result.stderr)
    return outcomes


# ---- the unprivileged gateway: ``python probes.py CONFIG`` started as root ----

CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000


def _reachable_for(uid: int, paths: list[str], stash: str) -> None:
    """In a private mount namespace of this process: /root becomes an empty 0755 tmpfs that
    shows only ``paths`` (the interpreter and the repository), so a non-root gateway can run
    from where root installed them. The host's /root is untouched."""
    libc = ctypes.CDLL(None, use_errno=True)

    def mount(
        src: bytes | None, tgt: str, fs: bytes | None, flags: int, data: bytes | None
    ) -> None:
        if libc.mount(src, tgt.encode(), fs, flags, data) != 0:
            raise OSError(ctypes.get_errno(), f"mount {tgt}")

    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    mount(b"none", "/", None, MS_REC | MS_PRIVATE, None)
    hidden = [p for p in paths if p.startswith("/root/")]
    if not hidden:
        return
    for i, path in enumerate(hidden):
        os.makedirs(f"{stash}/{i}", exist_ok=True)
        mount(path.encode(), f"{stash}/{i}", None, MS_BIND | MS_REC, None)
    mount(b"tmpfs", "/root", b"tmpfs", 0, b"mode=0755")
    for i, path in enumerate(hidden):
        os.makedirs(path, exist_ok=True)
        mount(f"{stash}/{i}".encode(), path, None, MS_BIND | MS_REC, None)


def _as_user(config: dict[str, Any]) -> None:
    uid, gid = config["uid"], config["gid"]
    _reachable_for(uid, config["reachable"], config["stash"])
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    os.environ.clear()
    os.environ.update(config["env"])


def main() -> None:
    config = json.loads(sys.argv[1])
    _as_user(config)
    from keel_tool_gateway.adapters.sandbox import Sandbox, SandboxSettings

    settings = SandboxSettings.model_validate(config["settings"])
    sandbox = Sandbox(settings, python_layer=False, ro_binds=tuple(config["ro_binds"]))
    ctx = {**config["ctx"], "gateway_pid": os.getpid()}
    outcomes = asyncio.run(run_probes(sandbox, ctx))
    print(
        json.dumps(
            {"pid": os.getpid(), "outcomes": {k: [o.ok, o.text] for k, o in outcomes.items()}}
        )
    )


if __name__ == "__main__":
    main()
