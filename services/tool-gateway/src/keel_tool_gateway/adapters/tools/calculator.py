"""Arithmetic over Python's ``ast``, without ``eval``: only numbers, operators, a few math
functions and constants are understood; everything else is refused with a reason.

Limits keep one call cheap: the expression's length, its nesting depth, exponents, and the
size of every intermediate integer (checked before a power or product is computed).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keel_tool_gateway.domain.registry import Tool, ToolError

MAX_LENGTH = 500
# Deep enough for a 250-term sum, shallow enough to stay far from Python's recursion limit.
MAX_DEPTH = 200
MAX_EXPONENT = 1000
# About 1,233 decimal digits; far below Python's int->str limit.
MAX_INT_BITS = 4096
MAX_ROUND_DIGITS = 100

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
# name -> (function, least and most positional arguments; None = no upper bound)
_FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "sqrt": (math.sqrt, 1, 1),
    "abs": (abs, 1, 1),
    "round": (lambda x, n=None: round(x, _digits(n)) if n is not None else round(x), 1, 2),
    "min": (lambda *xs: min(xs), 1, None),
    "max": (lambda *xs: max(xs), 1, None),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
}


class CalculatorError(ToolError):
    """The expression is outside what the calculator accepts, or has no finite result."""


class CalculatorInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        min_length=1,
        max_length=MAX_LENGTH,
        description=(
            "Arithmetic expression: numbers, + - * / // % **, parentheses, "
            "sqrt abs round min max floor ceil, pi, e. Example: (17 * 23) + 4"
        ),
    )


def evaluate(expression: str) -> Number:
    """The value of ``expression``; raises CalculatorError saying what was refused."""
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise CalculatorError(f"not a valid expression: {_syntax_reason(exc)}") from exc
    try:
        return _eval(tree.body, 0)
    except ZeroDivisionError as exc:
        raise CalculatorError("division by zero") from exc
    except OverflowError as exc:
        raise CalculatorError("result is too large") from exc


def format_number(value: Number) -> str:
    """Integers (and floats with an integral value) without '.0'; other floats in the
    shortest form that reads back as the same number."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _eval(node: ast.AST, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise CalculatorError(f"expression is nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.Constant):
        return _checked(_literal(node.value))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _eval(node.left, depth + 1)
        right = _eval(node.right, depth + 1)
        _precheck(node.op, left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_eval(node.operand, depth + 1)))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculatorError(f"unknown name {node.id!r}; constants are {_names(_CONSTANTS)}")
    if isinstance(node, ast.Call):
        return _call(node, depth)
    raise CalculatorError(f"unsupported syntax: {_describe(node)}")


def _call(node: ast.Call, depth: int) -> Number:
    if not isinstance(node.func, ast.Name):
        raise CalculatorError(f"unsupported syntax: calling the result of {_describe(node.func)}")
    name = node.func.id
    if name not in _FUNCTIONS:
        raise CalculatorError(f"unknown function {name!r}; functions are {_names(_FUNCTIONS)}")
    if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
        raise CalculatorError(f"{name}() takes plain positional arguments only")
    function, least, most = _FUNCTIONS[name]
    if len(node.args) < least or (most is not None and len(node.args) > most):
        expected = (
            str(least)
            if least == most
            else f"{least} or more"
            if most is None
            else (f"{least} to {most}")
        )
        raise CalculatorError(f"{name}() takes {expected} argument(s), got {len(node.args)}")
    args = [_eval(arg, depth + 1) for arg in node.args]
    try:
        return _checked(function(*args))
    except (ValueError, TypeError) as exc:
        raise CalculatorError(f"{name}() failed: {exc}") from exc


def _literal(value: object) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculatorError(f"unsupported literal {value!r}: only real numbers are allowed")
    return value


def _precheck(op: ast.operator, left: Number, right: Number) -> None:
    """Refuse work whose result would be too large before doing it."""
    if isinstance(op, ast.Pow):
        if abs(right) > MAX_EXPONENT:
            raise CalculatorError(f"exponent {right:g} is larger than {MAX_EXPONENT} in magnitude")
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(left.bit_length() - 1, 0) * right > MAX_INT_BITS:
                raise CalculatorError("result is too large")
    elif isinstance(op, ast.Mult) and isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise CalculatorError("result is too large")


def _checked(value: object) -> Number:
    if isinstance(value, complex):
        raise CalculatorError("result is not a real number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculatorError(f"unexpected result type {type(value).__name__}")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError("result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is too large" if math.isinf(value) else "result is NaN")
    return value


def _digits(value: Number) -> int:
    if not isinstance(value, int) or abs(value) > MAX_ROUND_DIGITS:
        raise ValueError(
            f"digits must be an integer between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}"
        )
    return value


_SYNTAX_NAMES: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Compare: "comparison",
    ast.BoolOp: "boolean operator",
    ast.Lambda: "lambda",
    ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment",
    ast.JoinedStr: "f-string",
}


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.BinOp | ast.UnaryOp):
        return f"operator {type(node.op).__name__}"
    return _SYNTAX_NAMES.get(type(node), type(node).__name__)


def _names(table: dict[str, Any]) -> str:
    return ", ".join(sorted(table))


def _syntax_reason(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return exc.msg
    if isinstance(exc, RecursionError | MemoryError):
        return "too deeply nested"
    return str(exc)


def _run(args: CalculatorInput) -> str:
    return format_number(evaluate(args.expression))


CALCULATOR = Tool(
    name="calculator",
    description=(
        "Evaluates an arithmetic expression exactly (integers stay exact) and returns the "
        "number as text."
    ),
    input_model=CalculatorInput,
    run=_run,
    timeout_s=2.0,
    # Bounded by the expression limits: cheaper inline than a hop to a worker thread.
    blocking=False,
    effects="read_only",
)
