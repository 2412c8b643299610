"""Arguments a reviewer writes must be arguments the tool accepts.

The request carries the JSON schema of the tool's arguments as the model saw it; a modified
call that does not meet it is refused when the reviewer submits it, with the reason, rather
than accepted here and failing later in the tool gateway (which validates again regardless).
"""

from __future__ import annotations

import logging
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from keel_contracts.errors import InvalidArgument

log = logging.getLogger(__name__)


def check_arguments(schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Raise ``InvalidArgument`` naming the first problem; no schema means no check."""
    if not schema:
        return
    try:
        validator = Draft202012Validator(schema)
    except SchemaError as exc:
        log.warning("request carries an invalid argument schema, not checked: %s", exc.message)
        return
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise InvalidArgument(
            f"modified arguments do not match the tool's schema at {where}: {first.message}"
        )
