"""A small JSONPath subset for argument constraints, compiled once per rule.

Supported: ``$`` (the arguments object), ``.name``, ``['name']`` / ``["name"]`` (any key,
``\\'`` and ``\\\\`` escaped), ``[3]`` and ``[-1]`` (list index, negative from the end), ``[*]``
and ``.*`` (every element of a list, every value of an object). Not supported, and refused at
load time: recursive descent ``..``, filters ``[?(...)]``, slices, unions and functions.

Why not a library: policy paths only select values (no filters), the subset above is <200 lines
with no dependency, is validated at load time with a position in the error, and compiles to a
plain loop on the decision path. ``jsonpath-ng`` would add a PLY parser generator to the
security service for features (filters, updates) we would refuse anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Key:
    name: str


@dataclass(frozen=True)
class Index:
    at: int


@dataclass(frozen=True)
class Wildcard:
    pass


Step = Key | Index | Wildcard
Selector = Callable[[Any], list[Any]]


class JsonPathError(ValueError):
    """A path outside the supported subset; the message gives the position."""


def parse(path: str) -> tuple[Step, ...]:
    """Steps of a ``$``-rooted path; raise JsonPathError with the failing position."""
    if not path.startswith("$"):
        raise JsonPathError(f"JSON path {path!r} must start with '$'")
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        step, pos = _step(path, pos)
        steps.append(step)
    return tuple(steps)


def _step(path: str, pos: int) -> tuple[Step, int]:
    char = path[pos]
    if char == ".":
        if path.startswith("..", pos):
            _fail(path, pos, "recursive descent '..' is not supported")
        if path.startswith(".*", pos):
            return Wildcard(), pos + 2
        name = _NAME.match(path, pos + 1)
        if name is None:
            _fail(path, pos + 1, "expected a name after '.' (use ['...'] for other keys)")
        return Key(name.group()), name.end()
    if char == "[":
        return _bracket(path, pos)
    _fail(path, pos, f"unexpected {char!r}")


def _bracket(path: str, pos: int) -> tuple[Step, int]:
    inner = pos + 1
    if path.startswith("*]", inner):
        return Wildcard(), inner + 2
    index = _INDEX.match(path, inner)
    if index is not None and path.startswith("]", index.end()):
        return Index(int(index.group())), index.end() + 1
    if inner < len(path) and path[inner] in "'\"":
        return _quoted(path, inner)
    _fail(path, inner, "expected *, an integer or a quoted key inside [...]")


def _quoted(path: str, start: int) -> tuple[Step, int]:
    quote = path[start]
    chars: list[str] = []
    pos = start + 1
    while pos < len(path):
        char = path[pos]
        if char == "\\" and pos + 1 < len(path):
            chars.append(path[pos + 1])
            pos += 2
            continue
        if char == quote:
            if not path.startswith("]", pos + 1):
                _fail(path, pos + 1, "expected ']' after the quoted key")
            return Key("".join(chars)), pos + 2
        chars.append(char)
        pos += 1
    _fail(path, start, "unterminated quoted key")


def _fail(path: str, pos: int, reason: str) -> NoReturn:
    raise JsonPathError(f"invalid JSON path {path!r} at position {pos}: {reason}")


def compile_path(steps: tuple[Step, ...]) -> Selector:
    """A function from the arguments to the values the path selects (possibly none).

    A path without a wildcard selects at most one value and takes a loop-free fast path.
    """
    if not any(isinstance(step, Wildcard) for step in steps):
        return _single(steps)
    expanders = tuple(_expander(step) for step in steps)

    def select(document: Any) -> list[Any]:
        current = [document]
        for expand in expanders:
            found: list[Any] = []
            add = found.append
            for value in current:
                expand(value, add)
            if not found:
                return found
            current = found
        return current

    return select


def _single(steps: tuple[Step, ...]) -> Selector:
    def select(document: Any) -> list[Any]:
        value = document
        for step in steps:
            if isinstance(step, Key):
                if not isinstance(value, dict) or step.name not in value:
                    return []
                value = value[step.name]
            else:
                assert isinstance(step, Index)
                if not isinstance(value, list) or not -len(value) <= step.at < len(value):
                    return []
                value = value[step.at]
        return [value]

    return select


Expander = Callable[[Any, Callable[[Any], None]], None]


def _expander(step: Step) -> Expander:
    """Adds what one step selects from one value."""
    if isinstance(step, Wildcard):

        def every(value: Any, add: Callable[[Any], None]) -> None:
            if isinstance(value, list):
                for item in value:
                    add(item)
            elif isinstance(value, dict):
                for item in value.values():
                    add(item)

        return every
    if isinstance(step, Key):
        name = step.name

        def key(value: Any, add: Callable[[Any], None]) -> None:
            if isinstance(value, dict) and name in value:
                add(value[name])

        return key
    at = step.at

    def index(value: Any, add: Callable[[Any], None]) -> None:
        if isinstance(value, list) and -len(value) <= at < len(value):
            add(value[at])

    return index
