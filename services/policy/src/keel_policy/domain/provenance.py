"""``provenance:`` conditions — where an argument's text came from.

The tool gateway, which sees every tool output a session read, sends with each decision the
spans of the call's string arguments that also occur in that output (``Finding``: the
string's concrete place, the span, the tools whose output held it, and whether the user's task
text holds it too). Policy does not match text itself: it only asks whether a finding lies at
or under the places a rule names, came from the sources it names, and (by default) is absent
from the task — "this recipient is text the session read in a fetched page, not text the user
gave". Without findings (a caller that tracks none) every provenance condition fails, so it
can only ever add a requirement in the rules that use it (see docs/adr/0011-provenance.md).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keel_policy.domain.jsonpath import Index, Key, Step, Wildcard

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Finding:
    """One span of one string argument that occurs in untrusted tool output."""

    path: str
    span: str
    sources: tuple[str, ...]
    in_task: bool = False

    def shown(self) -> str:
        task = ", also in the task" if self.in_task else ""
        return f"{self.path}: {self.span!r} from {', '.join(self.sources)}{task}"


class SourceFilter(BaseModel):
    """``from: {tool: "mail.*"}``: only output of tools whose name matches the glob (an MCP
    tool's name carries its server: ``<prefix>.<server>.<tool>``); ``except: [globs]`` leaves
    out sources an operator trusts (``from: {except: ["mcp.travel.*"]}``: any other tool)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    tool: str = Field(default="*", min_length=1)
    except_: tuple[str, ...] = Field(default=(), alias="except")


class ProvenanceSpec(BaseModel):
    """``provenance: {path: P, from: untrusted | {tool: G}, not_in: task | nothing}`` holds
    when a span of a string at or under ``P`` occurs in the output of a matching tool —
    and, with ``not_in: task`` (the default), not in the session's task text."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    path: str = Field(min_length=1)
    from_: Literal["untrusted"] | SourceFilter = Field(default="untrusted", alias="from")
    not_in: Literal["task", "nothing"] = "task"

    @field_validator("path")
    @classmethod
    def _parses(cls, value: str) -> str:
        # Imported here: conditions.py imports this module for the model.
        from keel_policy.domain.conditions import check_path

        return check_path(value)

    def describe(self) -> str:
        source = "untrusted output" if self.from_ == "untrusted" else "output of "
        if isinstance(self.from_, SourceFilter):
            source += f"tools {self.from_.tool!r}"
            if self.from_.except_:
                source += f" except {list(self.from_.except_)}"
        only = " and not in the task" if self.not_in == "task" else ""
        return f"provenance: text at {self.path} came from {source}{only}"


def location_pattern(steps: tuple[Step, ...]) -> re.Pattern[str]:
    """The concrete paths the gateway reports (``$.to[0]``, ``$['odd key']``) that lie at or
    under the places ``steps`` name: a wildcard stands for any key or index, a negative index
    for any index (the list's length is not known here)."""
    parts = [r"^\$"]
    for step in steps:
        if isinstance(step, Key):
            name = re.escape(step.name)
            quoted = re.escape(_quoted(step.name))
            parts.append(f"(?:\\.{name}|\\[{quoted}\\])")
        elif isinstance(step, Index):
            parts.append(r"\[\d+\]" if step.at < 0 else f"\\[{step.at}\\]")
        elif isinstance(step, Wildcard):
            parts.append(r"(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\]|\['(?:[^'\\]|\\.)*'\])")
    parts.append(r"(?=$|[.\[])")
    return re.compile("".join(parts))


def concrete_key(name: str) -> str:
    """How a key is written in a concrete path (the gateway writes the same form)."""
    return f".{name}" if _IDENTIFIER.fullmatch(name) else f"[{_quoted(name)}]"


def _quoted(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def source_test(spec: ProvenanceSpec) -> Callable[[str], bool] | None:
    """Which tool names a condition accepts as a source; None for any untrusted source."""
    if not isinstance(spec.from_, SourceFilter):
        return None
    tool = re.compile(fnmatch.translate(spec.from_.tool)).match
    trusted = tuple(re.compile(fnmatch.translate(g)).match for g in spec.from_.except_)
    return lambda source: tool(source) is not None and not any(t(source) for t in trusted)
