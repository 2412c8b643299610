"""Grafana's value formats for the units the dashboard uses, so axes and stats read the same as
they would in Grafana (``percentunit`` 0.95 -> "95%", ``s`` 0.004 -> "4 ms", ``ops`` -> "/s")."""

from __future__ import annotations

import math
from collections.abc import Callable

_SI = ((1e12, " T"), (1e9, " B"), (1e6, " M"), (1e3, " K"))


def _trim(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _decimals_for(value: float, decimals: int | None) -> int:
    """Grafana-like: about three significant digits, never negative."""
    if decimals is not None:
        return decimals
    magnitude = abs(value)
    if magnitude == 0 or magnitude >= 100:
        return 0
    return max(0, 2 - math.floor(math.log10(magnitude)))


def short(value: float, decimals: int | None = None) -> str:
    for size, suffix in _SI:
        if abs(value) >= size:
            scaled = value / size
            return _trim(scaled, _decimals_for(scaled, decimals)) + suffix
    return _trim(value, _decimals_for(value, decimals))


def seconds(value: float, decimals: int | None = None) -> str:
    magnitude = abs(value)
    if magnitude == 0:
        return "0 s"
    for limit, scale, suffix in (
        (1e-6, 1e9, " ns"),
        (1e-3, 1e6, " µs"),
        (1, 1e3, " ms"),
        (60, 1, " s"),
        (3600, 1 / 60, " min"),
    ):
        if magnitude < limit:
            scaled = value * scale
            return _trim(scaled, _decimals_for(scaled, decimals)) + suffix
    scaled = value / 3600
    return _trim(scaled, _decimals_for(scaled, decimals)) + " hour"


def percent_unit(value: float, decimals: int | None = None) -> str:
    scaled = value * 100
    return _trim(scaled, _decimals_for(scaled, decimals if decimals is not None else None)) + "%"


def percent(value: float, decimals: int | None = None) -> str:
    return _trim(value, _decimals_for(value, decimals)) + "%"


def ops(value: float, decimals: int | None = None) -> str:
    return short(value, decimals) + " ops/s"


def dollars(value: float, decimals: int | None = None) -> str:
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if magnitude >= 1000:
        return sign + "$" + short(magnitude, decimals)
    places = decimals if decimals is not None else max(2, _decimals_for(magnitude, None) + 1)
    return sign + "$" + _trim(magnitude, places)


FORMATS: dict[str, Callable[[float, int | None], str]] = {
    "short": short,
    "none": short,
    "s": seconds,
    "percentunit": percent_unit,
    "percent": percent,
    "ops": ops,
    "reqps": lambda v, d: short(v, d) + " req/s",
    "currencyUSD": dollars,
}


def format_value(value: float, unit: str, decimals: int | None = None) -> str:
    return FORMATS.get(unit, short)(value, decimals)
