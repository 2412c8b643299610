"""Load a policy set from YAML, reporting problems with the file's line numbers."""

from __future__ import annotations

from pathlib import Path

from keel_core.yamlfile import load_yaml_model
from keel_policy.domain.models import PolicySet
from keel_policy.errors import PolicyFileError


def load_policy(path: Path) -> PolicySet:
    return load_yaml_model(path, PolicySet, PolicyFileError, "policy file")
