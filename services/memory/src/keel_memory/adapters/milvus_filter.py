"""Milvus boolean expressions built from caller values, with every string literal escaped.

Milvus string literals take C-style escapes (``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t``) on the
server and in Milvus Lite alike; Lite rejects a raw newline inside a literal, so those are
escaped too. Everything a caller sends goes through ``literal`` and never into the expression
text unescaped, so a metadata value like ``x" or type != "`` stays a value.

Every expression is confined to one scope: ``metadata["keel_tenant"] == <tenant>`` (and
``metadata["keel_agent"] == <agent>`` when the scope names an agent), the keys the store writes
into every row's metadata (``TENANT_KEY``, ``AGENT_KEY``; callers may not use them). They live
in the JSON field, not in columns of their own, so collections made before scopes need no new
schema: the store fills them in on open (rows without one are the ``default`` tenant's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from keel_memory.domain.models import MemoryScope

TENANT_KEY = "keel_tenant"
AGENT_KEY = "keel_agent"
# Matches every row that has a tenant (a missing key compares false in Milvus).
HAS_TENANT = f'metadata["{TENANT_KEY}"] >= ""'

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def literal(value: str) -> str:
    return '"' + value.translate(_ESCAPES) + '"'


def in_list(field: str, values: Sequence[str]) -> str:
    return f"{field} in [{', '.join(literal(v) for v in values)}]"


def scope_clauses(scope: MemoryScope) -> list[str]:
    clauses = [f"metadata[{literal(TENANT_KEY)}] == {literal(scope.tenant)}"]
    if scope.agent:
        clauses.append(f"metadata[{literal(AGENT_KEY)}] == {literal(scope.agent)}")
    return clauses


def in_scope(expr: str, scope: MemoryScope) -> str:
    """``expr`` (which may be "") confined to ``scope``."""
    return " and ".join([*scope_clauses(scope), *([f"({expr})"] if expr else [])])


def build_filter(types: Sequence[str], metadata: Mapping[str, str], scope: MemoryScope) -> str:
    """The scope, ``type in [...]`` and ``metadata["key"] == "value"`` for each filter, joined
    by ``and``."""
    clauses = scope_clauses(scope)
    if types:
        clauses.append(in_list("type", types))
    for key in sorted(metadata):
        clauses.append(f"metadata[{literal(key)}] == {literal(metadata[key])}")
    return " and ".join(clauses)


def forget_filter(
    session_id: str, created_before: datetime | None, types: Sequence[str], scope: MemoryScope
) -> str:
    """What Forget deletes besides explicit ids: every selector given must hold, within the
    scope. ``types`` alone selects nothing (an empty string), so it can never widen a forget to
    whole types."""
    clauses: list[str] = []
    if session_id:
        clauses.append(f"session_id == {literal(session_id)}")
    if created_before is not None:
        clauses.append(f"created_at < {int(created_before.timestamp() * 1000)}")
    if not clauses:
        return ""
    if types:
        clauses.append(in_list("type", types))
    return " and ".join([*scope_clauses(scope), *clauses])
