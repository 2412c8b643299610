"""Load a policy set from YAML, reporting problems with the file's line numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from keel_policy.domain.models import PolicySet
from keel_policy.errors import PolicyFileError


def load_policy(path: Path) -> PolicySet:
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyFileError(f"cannot read policy file {path}: {exc.strerror}") from exc
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PolicyFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    try:
        return PolicySet.model_validate(data if data is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        line = _line_of(node, loc)
        where = f"{path}:{line}" if line else str(path)
        dotted = ".".join(str(part) for part in loc) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PolicyFileError(f"{where}: {dotted}: {first['msg']}{more}") from exc


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """Walk the YAML node tree along a pydantic error location; the deepest line found."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line
