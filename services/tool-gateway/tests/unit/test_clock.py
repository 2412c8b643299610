from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from keel_tool_gateway.adapters.tools.clock import ClockInput, make_clock

FIXED = datetime(2025, 1, 2, 3, 4, 5, 678, tzinfo=UTC)


def run(arguments: dict[str, str]) -> str:
    tool = make_clock(lambda: FIXED)
    result = tool.run(tool.input_model.model_validate(arguments))
    assert isinstance(result, str)
    return result


def test_utc_by_default() -> None:
    assert run({}) == "2025-01-02T03:04:05+00:00"


def test_named_zone() -> None:
    assert run({"timezone": "Asia/Tokyo"}) == "2025-01-02T12:04:05+09:00"
    assert run({"timezone": "America/New_York"}) == "2025-01-01T22:04:05-05:00"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", ""])
def test_unknown_zone_is_a_validation_error(zone: str) -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        ClockInput.model_validate({"timezone": zone})


def test_real_clock_is_current_utc() -> None:
    tool = make_clock()
    before = datetime.now(UTC).replace(microsecond=0)
    text = tool.run(ClockInput())
    assert isinstance(text, str)
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() is not None
    assert moment.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert before <= moment <= datetime.now(UTC)
