"""docs/security.md's gRPC table is the authorization table the interceptor enforces: a row
changed in one place and not the other fails here."""

from __future__ import annotations

import re
from pathlib import Path

from keel_core.grpc.authorization import ANY, AUTHORIZATION

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _documented() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    section = DOC.read_text(encoding="utf-8").split("## gRPC", 1)[1]
    rows: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        methods = re.findall(r"`([^`]+)`", cells[0])
        service = methods[0].rsplit("/", 1)[0]
        names = [methods[0], *(f"{service}/{m}" for m in methods[1:])]
        rows.update({name: (_names(cells[1]), _names(cells[2])) for name in names})
    return rows


def _names(cell: str) -> frozenset[str]:
    cell = re.sub(r"\(.*?\)", "", cell)
    if cell.strip() == "any":
        return frozenset({ANY})
    return frozenset(n.strip() for n in cell.split(",") if n.strip() and n.strip() != "—")


def test_the_documented_table_is_the_enforced_one() -> None:
    enforced = {
        method.lstrip("/").split(".")[-1] if not method.startswith("/grpc.") else method[1:]: (
            rule.services,
            rule.roles,
        )
        for method, rule in AUTHORIZATION.items()
    }
    assert _documented() == enforced
