import json
import logging

from keel_core.logging import JsonFormatter, session_id_var, trace_id_var


def test_json_lines_carry_the_session_and_trace_of_the_current_context() -> None:
    formatter = JsonFormatter("svc")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    assert "session_id" not in json.loads(formatter.format(record))
    session_token = session_id_var.set("s-1")
    trace_token = trace_id_var.set("a" * 32)
    try:
        line = json.loads(formatter.format(record))
    finally:
        session_id_var.reset(session_token)
        trace_id_var.reset(trace_token)
    assert line["message"] == "hello you"
    assert (line["service"], line["session_id"], line["trace_id"]) == ("svc", "s-1", "a" * 32)
