"""Load policy sets from a YAML file or a directory of them, reporting problems as
``file:line: field: reason``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from keel_core.yamlfile import load_yaml_model
from keel_policy.domain.models import (
    ListSpec,
    NamedList,
    PolicyBundle,
    PolicyDocument,
    PolicySet,
    VarSpec,
)
from keel_policy.domain.sets import resolve
from keel_policy.errors import PolicyFileError

SUFFIXES = (".yaml", ".yml")


def policy_files(path: Path) -> list[Path]:
    """The file itself, or a directory's ``*.yaml``/``*.yml`` files (not hidden, not
    recursive) in name order."""
    if not path.is_dir():
        return [path]
    return sorted(
        p
        for p in path.iterdir()
        if p.suffix in SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def load_policy(path: Path) -> PolicyBundle:
    """Every set of the file or directory, validated (including ``extends`` and clashes
    between files); raise PolicyFileError on the first problem."""
    files = policy_files(path)
    if not files:
        raise PolicyFileError(f"policy directory {path} has no *.yaml or *.yml files")
    sets: list[PolicySet] = []
    sources: list[str] = []
    names = _Names()
    for file in files:
        document = load_yaml_model(file, PolicyDocument, PolicyFileError, "policy file")
        names.add(file, document)
        for policy_set in document.policy_sets():
            sets.append(policy_set)
            sources.append(str(file))
    bundle = PolicyBundle(
        sets=tuple(sets),
        sources=tuple(sources),
        lists=names.lists,
        vars=names.vars,
        files=tuple(str(f) for f in names.files),
    )
    resolve(bundle)
    return bundle


class _Names:
    """The lists and variables of every file, their files read; a name defined twice (in
    one directory) is an error naming both files."""

    def __init__(self) -> None:
        self.lists: dict[str, NamedList] = {}
        self.vars: dict[str, Any] = {}
        self.files: list[Path] = []
        self._where: dict[str, Path] = {}

    def add(self, file: Path, document: PolicyDocument) -> None:
        for name, spec in document.lists.items():
            self._claim(f"list {name!r}", file)
            self.lists[name] = NamedList(items=self._items(file, name, spec), topic=spec.topic)
        for name, value in document.vars.items():
            self._claim(f"variable {name!r}", file)
            self.vars[name] = self._var(file, name, value) if isinstance(value, VarSpec) else value

    def _claim(self, what: str, file: Path) -> None:
        if what in self._where:
            raise PolicyFileError(f"{file}: {what} is also defined in {self._where[what]}")
        self._where[what] = file

    def _items(self, file: Path, name: str, spec: ListSpec) -> tuple[Any, ...]:
        if spec.file is None:
            return spec.items
        source = file.parent / spec.file
        self.files.append(source)
        return spec.items + read_items(source, f"{file}: list {name!r}")

    def _var(self, file: Path, name: str, spec: VarSpec) -> str:
        source = file.parent / spec.file
        self.files.append(source)
        try:
            return source.read_text().strip()
        except OSError as exc:
            raise PolicyFileError(f"{file}: variable {name!r}: cannot read {source}") from exc


def read_items(source: Path, what: str) -> tuple[Any, ...]:
    """A list file: a JSON or YAML list (``.json``, ``.yaml``, ``.yml``), else one item a line
    (blank lines and ``#`` comments skipped)."""
    try:
        text = source.read_text()
    except OSError as exc:
        raise PolicyFileError(f"{what}: cannot read {source}: {exc.strerror}") from exc
    if source.suffix in (".json", *SUFFIXES):
        try:
            value = json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise PolicyFileError(f"{what}: {source} is not valid: {exc}") from exc
        if not isinstance(value, list):
            raise PolicyFileError(f"{what}: {source} must hold a list")
        return tuple(value)
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def fingerprint(path: Path, extra: Sequence[str] = ()) -> str:
    """sha256 over the names and contents of the policy files and of the files their lists
    and variables were read from (``extra``): what a reload compares. Contents, not mtimes,
    so two quick edits in the same clock tick are still seen."""
    digest = hashlib.sha256()
    for file in [*policy_files(path), *(Path(p) for p in extra)]:
        try:
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
        except OSError as exc:
            digest.update(f"unreadable: {exc}".encode())
    return digest.hexdigest()
