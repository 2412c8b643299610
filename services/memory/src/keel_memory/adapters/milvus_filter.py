"""Milvus boolean expressions built from caller values, with every string literal escaped.

Milvus string literals take C-style escapes (``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t``) on the
server and in Milvus Lite alike; Lite rejects a raw newline inside a literal, so those are
escaped too. Everything a caller sends goes through ``literal`` and never into the expression
text unescaped, so a metadata value like ``x" or type != "`` stays a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def literal(value: str) -> str:
    return '"' + value.translate(_ESCAPES) + '"'


def in_list(field: str, values: Sequence[str]) -> str:
    return f"{field} in [{', '.join(literal(v) for v in values)}]"


def build_filter(types: Sequence[str], metadata: Mapping[str, str]) -> str:
    """``type in [...]`` and ``metadata["key"] == "value"`` for each filter, joined by ``and``."""
    clauses: list[str] = []
    if types:
        clauses.append(in_list("type", types))
    for key in sorted(metadata):
        clauses.append(f"metadata[{literal(key)}] == {literal(metadata[key])}")
    return " and ".join(clauses)


def forget_filter(session_id: str, created_before: datetime | None, types: Sequence[str]) -> str:
    """What Forget deletes besides explicit ids: every selector given must hold. ``types``
    alone selects nothing (an empty string), so it can never widen a forget to whole types."""
    clauses: list[str] = []
    if session_id:
        clauses.append(f"session_id == {literal(session_id)}")
    if created_before is not None:
        clauses.append(f"created_at < {int(created_before.timestamp() * 1000)}")
    if not clauses:
        return ""
    if types:
        clauses.append(in_list("type", types))
    return " and ".join(clauses)
