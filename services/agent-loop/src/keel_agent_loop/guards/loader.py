"""Read and validate a guards file; problems are reported as ``file:line: field: reason``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from keel_agent_loop.errors import GuardsFileError
from keel_agent_loop.guards.engine import GuardEngine
from keel_agent_loop.guards.models import GuardsDocument
from keel_core.yamlfile import load_yaml_model


def load_guards(path: Path) -> GuardEngine:
    """The engine of the file at ``path``; raise ``GuardsFileError`` on the first problem."""
    return GuardEngine(load_yaml_model(path, GuardsDocument, GuardsFileError, "guards file"))


def fingerprint(path: Path) -> str:
    """What the reloader compares: the file's bytes (a missing file is a change too)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"
