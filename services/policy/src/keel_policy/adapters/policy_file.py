"""Load policy sets from a YAML file or a directory of them, reporting problems as
``file:line: field: reason``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from keel_core.yamlfile import load_yaml_model
from keel_policy.domain.models import PolicyBundle, PolicyDocument, PolicySet
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
    for file in files:
        document = load_yaml_model(file, PolicyDocument, PolicyFileError, "policy file")
        for policy_set in document.policy_sets():
            sets.append(policy_set)
            sources.append(str(file))
    bundle = PolicyBundle(sets=tuple(sets), sources=tuple(sources))
    resolve(bundle)
    return bundle


def fingerprint(path: Path) -> str:
    """sha256 over the names and contents of the policy files: what a reload compares.
    Contents, not mtimes, so two quick edits in the same clock tick are still seen."""
    digest = hashlib.sha256()
    try:
        for file in policy_files(path):
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    except OSError as exc:
        digest.update(f"unreadable: {exc}".encode())
    return digest.hexdigest()
