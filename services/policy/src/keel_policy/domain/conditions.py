"""The conditions a rule's ``when`` may hold, as data (validated at load; compiled once by
``domain/compiler.py``).

Every kind is told apart by its one distinguishing key, so a file reads as what it means:

- a **path constraint** (``path:`` plus tests): the arguments' values at a JSON path;
- ``not:`` one condition; ``any_of:`` / ``all_of:`` a list of conditions;
- ``sum:`` arithmetic over argument paths (``a + b <= n``, ``sum($.items[*].amount) <= n``);
- ``state:`` running counts and sums kept by the service (``domain/state.py``);
- ``provenance:`` where an argument's text came from (``domain/provenance.py``).

They share one model (``ArgConstraint``, a "condition"), so an error names the field as written
(``rules.0.when.1.lte``) and old files read as before.

Operands may name a list or a variable of the policy file (``$lists.payees``, ``$vars.limit``),
another argument path (``{path: $.start}``) or the time of the decision (``now``, ``now+1d``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keel_policy.domain.jsonpath import parse
from keel_policy.domain.provenance import ProvenanceSpec

Quantifier = Literal["any", "all"]
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
LIST_REF = "$lists."
VAR_REF = "$vars."
# "now", "now+1d", "now-90m": the decision's time, shifted.
NOW = re.compile(r"^now(?:([+-])(\d+)([smhd]))?$")
DURATION = re.compile(r"^(\d+)([smhd])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def check_path(value: str) -> str:
    """A ``$``-rooted JSON path (see ``jsonpath.py``) or a plain dotted path of keys."""
    if value.startswith("$"):
        parse(value)
    elif any(not part for part in value.split(".")):
        raise ValueError(f"invalid dotted path {value!r}: empty key")
    return value


def duration_s(text: str) -> float:
    """``30s``, ``15m``, ``12h``, ``1d`` in seconds; ValueError otherwise."""
    found = DURATION.match(text)
    if found is None:
        raise ValueError(f"invalid duration {text!r}: use a number and s, m, h or d (e.g. 1d)")
    return float(int(found.group(1)) * UNIT_S[found.group(2)])


class PathOperand(BaseModel):
    """Another argument's value: ``{path: $.start}`` (the first value the path selects)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _parses(cls, value: str) -> str:
        return check_path(value)


# A number, a time (ISO 8601 text, ``now``, ``now-1h``), a ``$vars.x`` reference, or a path.
Operand = bool | int | float | str | PathOperand
# A literal list, a ``$lists.x`` reference, or the values another path selects.
ListOperand = tuple[Any, ...] | str | PathOperand

_COMPARISONS = ("lt", "lte", "gt", "gte")


class Bounds(BaseModel):
    """Numeric bounds shared by ``sum`` and ``state``: numbers or ``$vars`` references."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lt: float | str | None = None
    lte: float | str | None = None
    gt: float | str | None = None
    gte: float | str | None = None
    equals: float | str | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Bounds:
        written = [getattr(self, n) for n in (*_COMPARISONS, "equals")]
        if all(value is None for value in written):
            raise ValueError("needs a bound: lt, lte, gt, gte or equals")
        for value in written:
            if isinstance(value, str) and not value.startswith(VAR_REF):
                raise ValueError(f"a bound is a number or a $vars reference, not {value!r}")
        return self


Per = Literal["session", "tenant", "agent"]


class StateSpec(Bounds):
    """A running total kept by the service (``domain/state.py``): the calls of tools matching
    ``count`` (a glob), or the sum of ``sum`` (a path) over the calls of tools matching
    ``tool``, per session, tenant or agent, within the last ``window``. What is compared is
    the total *including this call*: ``lte: 5`` allows the fifth call and not the sixth."""

    count: str | None = None
    sum: str | None = None
    tool: str | None = None
    per: Per = "session"
    window: str = "7d"

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        seconds = duration_s(value)
        if not 0 < seconds <= 7 * 86400:
            raise ValueError(f"window {value!r}: from 1s to 7d (state is kept for 7 days)")
        return value

    @field_validator("sum")
    @classmethod
    def _sum_path(cls, value: str | None) -> str | None:
        return check_path(value) if value is not None else None

    @model_validator(mode="after")
    def _one_measure(self) -> StateSpec:
        if (self.count is None) == (self.sum is None):
            raise ValueError("state needs exactly one of count (a tool glob) or sum (a path)")
        if self.sum is not None and self.tool is None:
            raise ValueError("state with sum needs tool: the glob of the calls it adds up")
        if self.count is not None and self.tool is not None:
            raise ValueError("state with count names its tools in count, not tool")
        return self


class ArgConstraint(BaseModel):
    """One condition: exactly one of ``path`` (a path constraint), ``not``, ``any_of``,
    ``all_of``, ``sum`` or ``state``.

    **Path constraint.** ``path`` is a JSONPath (``$.recipients[*].domain``, see
    ``domain/jsonpath.py``) or a plain dotted path of object keys (``recipient.domain``). Every
    test given must hold for a selected value; ``match`` says whether any or all selected
    values must pass. A path that selects nothing never matches, whatever the quantifier —
    unless ``missing: true`` asks exactly that ("nothing is there"); ``missing: false`` alone
    asks "something is there". ``equals: null`` asks for an explicit JSON null (a missing key
    is not null). ``where`` holds conditions on each selected value itself (paths relative to
    it): ``any``/``all`` over lists and objects.

    **not / any_of / all_of**: negation (a path constraint on a missing key fails, so its
    ``not`` holds), at least one, every one.

    **sum**: the sum of every number the paths select, compared with ``lt``/``lte``/``gt``/
    ``gte``/``equals`` (numbers or ``$vars``): ``sum: [$.amount, $.fee]`` is ``amount + fee``;
    ``sum: $.items[*].price`` adds a list. A path that selects nothing adds 0; a selected value
    that is not a number fails the condition.

    **state**: a running total kept by the service (``StateSpec``).

    **provenance**: where the text at a path came from (``ProvenanceSpec``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    path: str | None = Field(default=None, min_length=1)
    match: Quantifier = "any"
    equals: Any = None
    one_of: tuple[Any, ...] | None = None
    in_: ListOperand | None = Field(default=None, alias="in")
    regex: str | None = None
    startswith: str | None = None
    endswith: str | None = None
    contains: str | None = None
    min: float | None = None
    max: float | None = None
    lt: Operand | None = None
    lte: Operand | None = None
    gt: Operand | None = None
    gte: Operand | None = None
    missing: bool | None = None
    where: tuple[ArgConstraint, ...] | None = None
    # The other kinds. A new kind (e.g. where an argument's text came from) is one more
    # optional field here, named in KINDS, with a compiler in ``compiler.COMPILERS``.
    not_: ArgConstraint | None = Field(default=None, alias="not")
    any_of: tuple[ArgConstraint, ...] | None = Field(default=None, min_length=1)
    all_of: tuple[ArgConstraint, ...] | None = Field(default=None, min_length=1)
    sum: tuple[str, ...] | None = Field(default=None, min_length=1)
    state: StateSpec | None = None
    provenance: ProvenanceSpec | None = None

    @field_validator("path")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        return check_path(value) if value is not None else None

    @field_validator("sum", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("sum")
    @classmethod
    def _paths(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return tuple(check_path(path) for path in value) if value is not None else None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(VAR_REF):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return value

    @property
    def kind(self) -> str:
        for name in KINDS:
            if getattr(self, name) is not None:
                return name
        return "path"

    @property
    def tests_equals(self) -> bool:
        """``equals`` was written (``equals: null`` included)."""
        return "equals" in self.model_fields_set

    def value_tests(self) -> tuple[str, ...]:
        """The names of the value tests written, in a fixed order."""
        names = ("one_of", "in_", "regex", "startswith", "endswith", "contains", "min", "max")
        written = [n for n in (*names, *_COMPARISONS) if getattr(self, n) is not None]
        return (("equals",) if self.tests_equals else ()) + tuple(written)

    @model_validator(mode="after")
    def _one_kind(self) -> ArgConstraint:
        kinds = [name for name in ("path", *KINDS) if getattr(self, name) is not None]
        if len(kinds) != 1:
            shown = ", ".join(_SHOWN.get(k, k) for k in kinds) if kinds else "none"
            raise ValueError(
                "a condition needs exactly one of path, not, any_of, all_of, sum, state, "
                "provenance "
                f"(found: {shown})"
            )
        if self.path is not None:
            return self._path_ok()
        tests = self.value_tests()
        extra = self.missing is not None or self.where is not None or self.match != "any"
        if self.sum is not None:
            allowed = {"equals", *_COMPARISONS}
            if extra or not tests or set(tests) - allowed:
                raise ValueError("sum takes only lt, lte, gt, gte or equals (at least one)")
            for name in tests:
                _number_or_var(getattr(self, name), name)
        elif tests or extra:
            raise ValueError(f"{_SHOWN.get(kinds[0], kinds[0])} takes no other test")
        return self

    def _path_ok(self) -> ArgConstraint:
        tests = self.value_tests()
        if not tests and self.missing is None and self.where is None:
            raise ValueError(
                "a constraint needs one of equals, one_of, regex, min, max, in, startswith, "
                "endswith, contains, lt, lte, gt, gte, missing, where"
            )
        if self.missing is True and (tests or self.where is not None):
            raise ValueError("missing: true selects nothing, so it takes no other test")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


KINDS = ("not_", "any_of", "all_of", "sum", "state", "provenance")
_SHOWN = {"not_": "not"}


def _number_or_var(value: Any, name: str) -> None:
    if isinstance(value, bool) or not (
        isinstance(value, int | float) or (isinstance(value, str) and value.startswith(VAR_REF))
    ):
        raise ValueError(f"{name}: a bound is a number or a $vars reference, not {value!r}")


ArgConstraint.model_rebuild()

# What a rule's ``when`` holds: conditions.
Condition = ArgConstraint
