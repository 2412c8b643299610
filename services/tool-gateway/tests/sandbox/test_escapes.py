"""Escape probes through the python tool: each must come back as a ToolError saying why,
quickly, without a crash of the caller and without leaking anything of the host."""

import time

import pytest

from keel_tool_gateway.adapters.tools.python_exec import python_tool
from keel_tool_gateway.domain.registry import ToolError

from .conftest import FAST, call

TOOL = python_tool(FAST)
IMPORT_OS = "sandbox: import of 'os' is not allowed"

PROBES = [
    # Network: the modules that reach it are not importable (the OS-layer tests show the
    # network namespace stops them anyway).
    (
        "socket-loopback",
        "import socket\nsocket.create_connection(('127.0.0.1', 22), 1)",
        "import of 'socket' is not allowed",
    ),
    (
        "socket-external",
        "import socket\nsocket.create_connection(('192.0.2.1', 80), 1)",
        "import of 'socket' is not allowed",
    ),
    (
        "urllib",
        "import urllib.request\nurllib.request.urlopen('http://192.0.2.1/')",
        "import of 'urllib.request' is not allowed",
    ),
    # Files outside the scratch directory.
    ("etc-shadow", "print(open('/etc/shadow').read())", "outside the scratch directory"),
    ("proc-1-environ", "print(open('/proc/1/environ').read())", "outside the scratch directory"),
    (
        "proc-self-environ",
        "print(open('/proc/self/environ', 'rb').read())",
        "outside the scratch directory",
    ),
    ("proc-self-mem", "open('/proc/self/mem', 'rb')", "outside the scratch directory"),
    ("dot-dot", "print(open('../../../etc/passwd').read())", "outside the scratch directory"),
    ("open-descriptor", "print(open(0).read())", "not a descriptor"),
    ("open-opener", "open('x', 'w', opener=lambda p, f: 0)", "opener is not allowed"),
    # Environment secrets.
    ("environ", "import os\nprint(os.environ)", IMPORT_OS),
    ("posix-environ", "import posix\nprint(posix.environ)", "import of 'posix' is not allowed"),
    # Processes and signals to the parent.
    ("fork-bomb", "import os\nwhile True:\n    os.fork()", IMPORT_OS),
    (
        "subprocess",
        "import subprocess\nsubprocess.run(['id'])",
        "import of 'subprocess' is not allowed",
    ),
    ("multiprocessing", "import multiprocessing", "import of 'multiprocessing' is not allowed"),
    ("kill-parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", IMPORT_OS),
    (
        "kill-via-random-os",
        "import random\nrandom._os.kill(1, 9)",
        "module 'random' has no attribute '_os'",
    ),
    (
        "kill-via-statistics-sys",
        "import statistics\nstatistics.sys.modules['os'].kill(1, 9)",
        "module 'statistics' has no attribute 'sys'",
    ),
    # Imports by every door.
    ("import-os", "import os", IMPORT_OS),
    ("from-os", "from os import system", IMPORT_OS),
    ("dunder-import", "__import__('os').system('id')", IMPORT_OS),
    ("builtins-dict", "__builtins__['__import__']('os')", IMPORT_OS),
    ("builtins-module", "import builtins\nbuiltins.open", "import of 'builtins' is not allowed"),
    ("builtins-attr", "import math\nprint(math.__builtins__)", "attribute '__builtins__'"),
    (
        "importlib",
        "import importlib\nimportlib.import_module('os')",
        "import of 'importlib' is not allowed",
    ),
    (
        "ctypes",
        "import ctypes\nctypes.CDLL(None).system(b'id')",
        "import of 'ctypes' is not allowed",
    ),
    ("sys-modules", "import sys\nsys.modules['os'].system('id')", "import of 'sys' is not allowed"),
    (
        "pickle-reduce",
        "class P:\n    def __reduce__(self):\n        return (print, ('x',))\n"
        "import pickle\npickle.loads(pickle.dumps(P()))",
        "import of 'pickle' is not allowed",
    ),
    ("compile-exec", "exec(compile('import os', 'x', 'exec'))", "compile() is not allowed"),
    ("exec", "exec('import os')", "exec() is not allowed"),
    ("eval", "eval(\"__import__('os')\")", "eval() is not allowed"),
    ("relative-import", "from . import os", "relative imports are not allowed"),
    (
        "caught-import",
        "try:\n    import os\nexcept ImportError:\n    pass\nprint('escaped')",
        IMPORT_OS,
    ),
    ("typing-hints", "import typing", "import of 'typing' is not allowed"),
    # Object-graph walks to a module that holds os.
    (
        "subclasses-walk",
        "for c in ().__class__.__base__.__subclasses__():\n"
        "    if c.__name__ == '_wrap_close':\n"
        "        c.__init__.__globals__['system']('id')",
        "attribute '__class__'",
    ),
    ("type-subclasses", "print(type.__subclasses__(object))", "attribute '__subclasses__'"),
    ("getattr-walk", "getattr(getattr((), '__class__'), '__base__')", "attribute '__class__'"),
    ("vars", "print(vars(object))", "vars() is not allowed"),
    ("func-globals", "print(getattr(print, '__self__'))", "attribute '__self__'"),
    ("frame-walk", "def g():\n    yield 1\nprint(g().gi_frame.f_back)", "attribute 'gi_frame'"),
    (
        "traceback-walk",
        "try:\n    1 / 0\nexcept Exception as e:\n    print(e.__traceback__.tb_frame.f_globals)",
        "attribute '__traceback__'",
    ),
    (
        "match-class-attr",
        "match ():\n    case object(__class__=c):\n        print(c)",
        "attribute '__class__'",
    ),
    (
        "formatter-get-field",
        "import string\nstring.Formatter().get_field('0.__class__', [()], {})",
        "module 'string' has no attribute 'Formatter'",
    ),
    (
        "update-wrapper",
        "import functools\nclass S:\n    pass\n"
        "functools.update_wrapper(S(), getattr, assigned=('x',), updated=())",
        "module 'functools' has no attribute 'update_wrapper'",
    ),
    ("breakpoint", "breakpoint()", "breakpoint() is not allowed"),
    # The gate's own helpers: the object once handed out as __import__ imported unchecked.
    (
        "gate-helper-load",
        "print(__import__._load('os').getcwd())",
        "'function' object has no attribute '_load'",
    ),
    (
        "gate-helper-copy",
        "import math\nprint(__import__.copy(math))",
        "'function' object has no attribute 'copy'",
    ),
    # Strings evaluated by an allowed module, never seen by the syntax check.
    (
        "singledispatch-annotation",
        "import functools\n@functools.singledispatch\ndef f(x):\n    pass\n"
        "def g(x: '().__class__'):\n    pass\nf.register(g)\nprint(list(f.registry))",
        "module 'functools' has no attribute 'singledispatch'",
    ),
    (
        "singledispatchmethod",
        "from functools import singledispatchmethod",
        "cannot import name 'singledispatchmethod'",
    ),
    # Resources.
    ("memory-bomb", "x = bytearray(1 << 40)", "sandbox: memory limit exceeded (256 MB)"),
    (
        "memory-growth",
        "xs = []\nwhile True:\n    xs.append(bytearray(10 ** 7))",
        "sandbox: memory limit exceeded",
    ),
    ("cpu-spin", "while True:\n    pass", "sandbox: CPU time limit exceeded (1 s)"),
    ("sleep-forever", "import time\ntime.sleep(10 ** 6)", "sandbox: killed after 4.0 s wall time"),
    ("huge-stdout", "while True:\n    print('x' * 1000)", "sandbox: output exceeded 65536 bytes"),
    ("huge-stderr", "raise ValueError('x' * 10 ** 6)", "sandbox: output exceeded 65536 bytes"),
    (
        "huge-file",
        "f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * 10 ** 5)",
        "sandbox: file size limit exceeded",
    ),
    (
        "scratch-fill",
        "for i in range(100):\n    with open(f'f{i}', 'wb') as f:\n        f.write(b'x' * 1000000)",
        "sandbox: scratch space exhausted",
    ),
    (
        "open-files",
        "fs = [open(f'f{i}', 'w') for i in range(1000)]",
        "sandbox: open file limit exceeded",
    ),
    ("recursion", "def f():\n    return f()\nf()", "RecursionError"),
]


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize(("code", "expected"), [p[1:] for p in PROBES], ids=[p[0] for p in PROBES])
async def test_probe_fails_safely_as_a_tool_error(
    code: str, expected: str, secret_env: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ToolError) as caught:
        await call(TOOL, code=code)
    message = str(caught.value)
    assert message.startswith("sandbox: ")
    assert expected in message
    assert secret_env not in message
    assert time.monotonic() - started < FAST.wall_timeout_s + 2


def test_there_are_at_least_25_probes() -> None:
    assert len(PROBES) >= 25
    assert len({name for name, _, _ in PROBES}) == len(PROBES)


@pytest.mark.usefixtures("isolated")
async def test_wall_clock_kills_a_run_that_outlives_its_timeout() -> None:
    tool = python_tool(FAST.model_copy(update={"cpu_seconds": 30}))
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"^sandbox: killed after 1\.0 s wall time$"):
        await call(tool, code="while True:\n    pass", timeout_s=1.0)
    assert time.monotonic() - started < 3.5
