"""The box on its own (any argv, extra directories, no network), its seccomp program, and the
run's cgroup: the pieces a later tool-server box reuses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keel_tool_gateway.adapters.sandbox import Sandbox
from keel_tool_gateway.adapters.sandbox.box import BoxSpec, box_launch
from keel_tool_gateway.adapters.sandbox.cgroups import CGROUP_ROOT, PARENT
from keel_tool_gateway.adapters.sandbox.seccomp import (
    AUDIT_ARCH_AARCH64,
    AUDIT_ARCH_X86_64,
    BPF_RET_K,
    DENIED_SYSCALLS,
    SECCOMP_RET_KILL_PROCESS,
    build_program,
)

from .test_os_layers import RAW_SETTINGS

REQUIRED = {
    "mount", "umount2", "pivot_root", "ptrace", "bpf", "keyctl", "add_key", "request_key",
    "perf_event_open", "unshare", "setns", "socket", "socketpair", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "process_vm_readv", "process_vm_writev", "open_by_handle_at", "name_to_handle_at",
    "personality",
}  # fmt: skip


@pytest.mark.parametrize("arch", [AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64])
def test_the_filter_refuses_every_syscall_the_issue_names(arch: int) -> None:
    assert REQUIRED <= set(DENIED_SYSCALLS[arch])
    assert len(set(DENIED_SYSCALLS[arch].values())) == len(DENIED_SYSCALLS[arch])


def test_the_program_kills_an_unknown_architecture_and_every_jump_lands_inside() -> None:
    program = build_program()
    assert program[-1] == (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS)
    for index, (code, jt, jf, _) in enumerate(program):
        if code & 0x07 == 0x05:  # BPF_JMP
            assert index + 1 + max(jt, jf) < len(program)
            assert max(jt, jf) <= 255


def _run_box(spec: BoxSpec) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    read, write = os.pipe()
    try:
        launch = box_launch(spec, write)
        done = subprocess.run(
            launch.argv, env=launch.env, pass_fds=(write,), capture_output=True, text=True,
            timeout=30, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    with os.fdopen(read) as status:
        merged: dict[str, object] = {}
        for line in status.read().splitlines():
            merged.update(json.loads(line))
    return done, merged


@pytest.mark.usefixtures("as_root")
def test_the_box_runs_any_argv_with_only_the_directories_it_declares(tmp_path: Path) -> None:
    data, work, scratch, hidden = (tmp_path / n for n in ("data", "work", "scratch", "hidden"))
    for directory in (data, work, scratch, hidden):
        directory.mkdir()
        directory.chmod(0o777)
    tmp_path.chmod(0o755)
    (data / "config").write_text("declared")
    (hidden / "secret").write_text("undeclared")
    program = (
        "import os\n"
        f"print(open({str(data / 'config')!r}).read())\n"
        f"open({str(work / 'out')!r}, 'w').write('made inside')\n"
        f"for p in ({str(data / 'new')!r}, {str(hidden / 'secret')!r}):\n"
        "    try:\n        open(p, 'a')\n        print('ESCAPED', p)\n"
        "    except OSError as e:\n        print(e.errno)\n"
        "print(os.getuid(), os.getcwd())"
    )
    spec = BoxSpec(
        argv=[os.path.realpath(sys.executable), "-I", "-S", "-c", program],
        scratch=str(scratch),
        uid=65534,
        gid=65534,
        env={"PATH": "/usr/bin"},
        ro_binds=[str(data)],
        rw_binds=[str(work)],
        wall_s=20,
    )
    done, status = _run_box(spec)
    assert status.get("isolated") is True, done.stderr
    assert status.get("exit") == 0, done.stderr
    assert done.stdout.splitlines() == ["declared", "30", "2", f"65534 {scratch}"]
    assert (work / "out").read_text() == "made inside"
    assert not (data / "new").exists()


@pytest.mark.usefixtures("as_root")
async def test_a_run_has_its_own_cgroup_and_it_is_gone_afterwards() -> None:
    if (
        not (CGROUP_ROOT / "memory" / "cgroup.procs").exists()
        and not (CGROUP_ROOT / "cgroup.controllers").exists()
    ):
        pytest.skip("no cgroup hierarchy on this machine")
    result = await Sandbox(RAW_SETTINGS, python_layer=False).run(
        "print(open('/proc/self/cgroup').read())"
    )
    groups = [line.split(":", 2)[2] for line in result.stdout.splitlines() if line]
    ours = [g for g in groups if g.startswith(f"/{PARENT}/keel-sbx-")]
    assert ours, groups
    for hierarchy in ("memory", "pids", ""):
        assert not (CGROUP_ROOT / hierarchy / ours[0].lstrip("/")).exists()
