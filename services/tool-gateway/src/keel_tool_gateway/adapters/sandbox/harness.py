"""The program that runs one snippet inside the sandbox, passed to ``python -I -S -c``.

Standalone on purpose (stdlib only, no ``__future__`` import): it runs in a fresh interpreter
that sees neither the gateway's packages nor its environment. Order matters:

1. read the payload and import the allowed modules (under the ``unshare`` backend the launcher
   has already dropped every privilege; under the others the harness still runs as root here,
   because the interpreter's files may be unreadable to the sandbox uid);
2. drop to the sandbox uid/gid if still root, and lower RLIMIT_NPROC (after the switch, so it
   counts that uid);
3. check the snippet's syntax tree, then run it with restricted builtins: an ``__import__`` that
   hands out copies of the allowed modules' public names, ``open`` confined to the scratch
   directory, attribute access by name that refuses dunders and frame internals, and no
   ``eval``/``exec``/``compile``/``breakpoint``.

The Python layer is a convenience and a tripwire, not the boundary: the launcher's namespaces,
rlimits, uid and scratch directory hold even when a snippet gets past it.

Exit statuses (read by the gateway): 0 ok, 1 the snippet raised, 3 a violation (its message is
the last stderr line, after ``VIOLATION_MARK``), 4 memory exhausted, 6 the harness could not set
up (nothing of the snippet ran).
"""

import ast
import builtins
import errno
import importlib
import io
import json
import linecache
import os
import resource
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_VIOLATION = 3
EXIT_MEMORY = 4
EXIT_SETUP = 6
VIOLATION_MARK = "keel-sandbox-violation: "
SNIPPET = "<snippet>"

# Dunder attributes a snippet may name: plain strings and ``super().__init__``.
SAFE_DUNDERS = frozenset({"__init__", "__name__", "__qualname__", "__doc__", "__module__"})
# Doors from an object to frames, globals and closures, which lead to the real builtins.
INTERNAL_ATTRIBUTES = frozenset(
    {
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "cr_origin",
        "ag_frame",
        "ag_code",
        "ag_await",
        "f_back",
        "f_builtins",
        "f_code",
        "f_globals",
        "f_locals",
        "f_trace",
        "tb_frame",
        "tb_next",
        "cell_contents",
        "func_globals",
        "func_closure",
    }
)
# Public names of allowed modules that read attributes by name (a way round the checks).
# functools.singledispatch(method) evaluates string annotations (typing.get_type_hints) in
# the function's globals: an expression the syntax check never saw.
HIDDEN_NAMES: dict[str, frozenset[str]] = {
    "string": frozenset({"Formatter"}),
    "functools": frozenset({"update_wrapper", "wraps", "singledispatch", "singledispatchmethod"}),
    "operator": frozenset({"attrgetter", "methodcaller"}),
}
# Imported on first use by allowed modules; loaded up front while files are still readable.
LAZY_DEPENDENCIES: dict[str, tuple[str, ...]] = {"datetime": ("_strptime", "time")}
# Builtins taken away or replaced below.
REMOVED_BUILTINS = frozenset(
    {
        "__import__",
        "__loader__",
        "__spec__",
        "__package__",
        "open",
        "eval",
        "exec",
        "compile",
        "breakpoint",
        "input",
        "getattr",
        "setattr",
        "delattr",
        "hasattr",
        "vars",
        "help",
        "exit",
        "quit",
        "copyright",
        "credits",
        "license",
    }
)

_violations: list[str] = []


class Violation(Exception):
    """Something the sandbox forbids; recorded even when the snippet catches it."""


class ImportViolation(Violation, ImportError):
    pass


class AccessViolation(Violation, PermissionError):
    pass


def violate(message: str, kind: type[Violation] = AccessViolation) -> NoReturn:
    _violations.append(message)
    raise kind(message)


def forbidden_attribute(name: str) -> bool:
    dunder = name.startswith("__") and name.endswith("__") and len(name) > 4
    return (dunder and name not in SAFE_DUNDERS) or name in INTERNAL_ATTRIBUTES


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.problems: list[str] = []

    def _attribute(self, name: str) -> None:
        if forbidden_attribute(name):
            self.problems.append(f"access to attribute {name!r} is not allowed")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        # Inner first: a chain is reported at its first step, as it reads.
        self.generic_visit(node)
        self._attribute(node.attr)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for name in node.kwd_attrs:
            self._attribute(name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.problems.append("relative imports are not allowed")
        for alias in node.names:
            self._attribute(alias.name)
        self.generic_visit(node)


def check_source(tree: ast.AST) -> list[str]:
    """What the snippet names that the sandbox refuses, before any of it runs."""
    checker = _Checker()
    checker.visit(tree)
    return checker.problems


def is_allowed(name: str, allowed: frozenset[str]) -> bool:
    return name.split(".", 1)[0] in allowed


class ModuleGate:
    """The snippet's ``__import__``: only allowed modules, each as a copy of its public names.

    A copy, because a real module object leads anywhere: ``random._os``, ``statistics.sys``.
    Module-valued names are themselves copied if allowed and left out if not.
    """

    def __init__(self, allowed: frozenset[str]) -> None:
        self._allowed = allowed
        self._copies: dict[str, types.ModuleType] = {}

    def __call__(
        self,
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> types.ModuleType:
        if level:
            violate("relative imports are not allowed", ImportViolation)
        if not isinstance(name, str) or not is_allowed(name, self._allowed):
            violate(f"import of {name!r} is not allowed", ImportViolation)
        module = self._load(name)
        if fromlist:
            for item in fromlist:
                if isinstance(item, str) and not hasattr(module, item):
                    submodule = f"{name}.{item}"
                    if is_allowed(submodule, self._allowed):
                        self._try_load(submodule)
            return self.copy(sys.modules[name])
        top = name.split(".", 1)[0]
        return self.copy(sys.modules[top])

    def _load(self, name: str) -> types.ModuleType:
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise ImportError(f"no module named {name!r} in the sandbox") from None
        # A submodule loaded now must show on the copies made before it.
        self._copies.pop(name.rpartition(".")[0], None)
        return module

    def _try_load(self, name: str) -> None:
        try:
            self._load(name)
        except ImportError:
            pass

    def copy(self, module: types.ModuleType) -> types.ModuleType:
        name = module.__name__
        cached = self._copies.get(name)
        if cached is not None:
            return cached
        clone = types.ModuleType(name, getattr(module, "__doc__", None))
        self._copies[name] = clone
        hidden = HIDDEN_NAMES.get(name, frozenset())
        for key, value in list(vars(module).items()):
            if key.startswith("_") or key in hidden:
                continue
            if isinstance(value, types.ModuleType):
                if is_allowed(value.__name__, self._allowed):
                    setattr(clone, key, self.copy(value))
                continue
            setattr(clone, key, value)
        return clone


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _guard(name: object) -> None:
    if isinstance(name, str) and forbidden_attribute(name):
        violate(f"access to attribute {name!r} is not allowed")


def safe_getattr(obj: object, name: str, *default: object) -> object:
    _guard(name)
    return getattr(obj, name, *default)


def safe_hasattr(obj: object, name: str) -> bool:
    _guard(name)
    return hasattr(obj, name)


def safe_setattr(obj: object, name: str, value: object) -> None:
    _guard(name)
    setattr(obj, name, value)


def safe_delattr(obj: object, name: str) -> None:
    _guard(name)
    delattr(obj, name)


def refused(name: str) -> Callable[..., NoReturn]:
    def stub(*_args: object, **_kwargs: object) -> NoReturn:
        violate(f"{name}() is not allowed")

    stub.__name__ = name
    return stub


class ScratchFiles:
    """``open`` confined to the scratch directory, and stdin for ``input``."""

    def __init__(self, scratch: str, stdin: io.StringIO) -> None:
        self._scratch = scratch
        self._stdin = stdin

    def open(self, file: object, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("opener") is not None:
            violate("open() with an opener is not allowed")
        if not isinstance(file, str | bytes):
            violate("open() takes a path inside the scratch directory, not a descriptor")
        path = os.fsdecode(file)
        resolved = os.path.realpath(os.path.join(self._scratch, path))
        if not _inside(resolved, self._scratch):
            violate(f"access to {path!r} outside the scratch directory is not allowed")
        return open(resolved, mode, *args, **kwargs)

    def input(self, prompt: object = "") -> str:
        if prompt:
            print(prompt, end="")
        line = self._stdin.readline()
        if not line:
            raise EOFError("end of stdin")
        return line[:-1] if line.endswith("\n") else line

    def read_stdin(self) -> str:
        """All of the stdin that input() has not read yet."""
        return self._stdin.read()


def sealed_import(gate: ModuleGate) -> Callable[..., types.ModuleType]:
    """The gate as a plain function. Handing out the ``ModuleGate`` object itself let a
    snippet call its helpers (``__import__._load('os')``: the real module, no check); a
    function has no such attribute, and its closure is a dunder the checks refuse."""

    def __import__(
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> types.ModuleType:
        return gate(name, globals, locals, fromlist, level)

    return __import__


def make_builtins(allowed: frozenset[str], scratch: str, stdin: io.StringIO) -> dict[str, Any]:
    """The snippet's builtins: Python's, less the doors out, plus guarded replacements."""
    files = ScratchFiles(scratch, stdin)
    table = {k: v for k, v in vars(builtins).items() if k not in REMOVED_BUILTINS}
    table.update(
        {
            "__import__": sealed_import(ModuleGate(allowed)),
            "open": files.open,
            "input": files.input,
            "read_stdin": files.read_stdin,
            "getattr": safe_getattr,
            "hasattr": safe_hasattr,
            "setattr": safe_setattr,
            "delattr": safe_delattr,
        }
    )
    for name in ("eval", "exec", "compile", "breakpoint", "vars"):
        table[name] = refused(name)
    return table


def _warm_up_datetime() -> None:
    # C code imports through the *calling* frame's __import__, which for a snippet is the
    # gate; datetime.strptime keeps _strptime once imported, so import it now, ungated.
    datetime = sys.modules["datetime"]
    datetime.datetime.strptime("2000", "%Y")


WARM_UPS: dict[str, Callable[[], None]] = {"datetime": _warm_up_datetime}


def preload(allowed: frozenset[str]) -> None:
    """Import the allowed modules and their lazy dependencies while still privileged."""
    for name in sorted(allowed):
        try:
            for module in (name, *LAZY_DEPENDENCIES.get(name, ())):
                importlib.import_module(module)
            if name in WARM_UPS:
                WARM_UPS[name]()
        except ImportError:
            pass


def drop_privileges(uid: int, gid: int, max_processes: int) -> None:
    """Become the sandbox uid for good (real, effective and saved), then cap its processes."""
    if os.getuid() == 0:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise RuntimeError("still able to become root after dropping privileges")
    resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
    os.umask(0o077)


def _report_exception(exc: BaseException) -> None:
    summary = traceback.TracebackException.from_exception(exc)
    summary.stack = traceback.StackSummary.from_list(
        [frame for frame in summary.stack if frame.filename == SNIPPET]
    )
    sys.stderr.write("".join(summary.format()))


def _finish(status: int, message: str = "") -> NoReturn:
    try:
        sys.stdout.flush()
    except (OSError, ValueError, MemoryError):
        pass
    if message:
        sys.stderr.write(f"\n{VIOLATION_MARK}{message}\n")
    try:
        sys.stderr.flush()
    except (OSError, ValueError, MemoryError):
        pass
    os._exit(status)


def _outcome(exc: BaseException | None) -> tuple[int, str]:
    if _violations:
        return EXIT_VIOLATION, _violations[0]
    if exc is None:
        return EXIT_OK, ""
    if isinstance(exc, MemoryError):
        return EXIT_MEMORY, ""
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return EXIT_VIOLATION, "file size limit exceeded"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return EXIT_VIOLATION, "scratch space exhausted"
    if isinstance(exc, OSError) and exc.errno == errno.EMFILE:
        return EXIT_VIOLATION, "open file limit exceeded"
    if isinstance(exc, SystemExit):
        return (EXIT_OK if exc.code in (None, 0) else EXIT_ERROR), ""
    _report_exception(exc)
    return EXIT_ERROR, ""


def run_snippet(code: str, namespace: dict[str, Any], restricted: bool) -> BaseException | None:
    """Runs the snippet; returns what it raised (None when it finished)."""
    try:
        tree = ast.parse(code, SNIPPET, "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return exc
    if restricted:
        problems = check_source(tree)
        if problems:
            _violations.extend(problems)
            return None
    linecache.cache[SNIPPET] = (len(code), None, code.splitlines(True), SNIPPET)
    try:
        exec(compile(tree, SNIPPET, "exec"), namespace)
    except BaseException as exc:  # noqa: BLE001 - whatever the snippet raised is its result
        return exc
    return None


def main(argv: list[str]) -> NoReturn:
    try:
        config = json.loads(argv[1])
        payload = json.loads(sys.stdin.buffer.read() or b"{}")
        allowed = frozenset(config["allowed_modules"])
        scratch = os.path.realpath(config["scratch"])
        preload(allowed)
        drop_privileges(config["uid"], config["gid"], config["max_processes"])
        stdin = io.StringIO(payload.get("stdin", ""))
    except BaseException as exc:  # noqa: BLE001 - nothing of the snippet ran
        sys.stderr.write(f"sandbox setup failed: {type(exc).__name__}: {exc}\n")
        os._exit(EXIT_SETUP)
    restricted = bool(config.get("python_layer", True))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    if restricted:
        namespace["__builtins__"] = make_builtins(allowed, scratch, stdin)
    else:
        sys.stdin = stdin
    try:
        failure = run_snippet(payload.get("code", ""), namespace, restricted)
        status, message = _outcome(failure)
    except MemoryError:
        status, message = EXIT_MEMORY, ""
    _finish(status, message)


if __name__ == "__main__":
    main(sys.argv)
