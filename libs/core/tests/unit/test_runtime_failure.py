"""A service whose consumer loop dies stops itself and exits non-zero, so an orchestrator that
restarts only failed processes restarts it (a clean SIGTERM stop still exits 0)."""

from __future__ import annotations

import pytest

from keel_core.runtime import ServiceFailed, ServiceRuntime, run_service
from keel_core.settings import ServiceSettings


class DyingConsumer:
    topics = ["keel.tasks"]

    async def run(self) -> None:
        raise RuntimeError("the DLQ refused a record")


async def test_a_dead_consumer_loop_stops_the_service_and_says_why() -> None:
    runtime = ServiceRuntime("svc", ServiceSettings())
    await runtime._supervise(DyingConsumer())  # type: ignore[arg-type]
    assert runtime._stop.is_set()
    assert "keel.tasks" in runtime._failure
    assert "the DLQ refused a record" in runtime._failure


@pytest.fixture(autouse=True)
def no_global_logging_or_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run_service`` configures the process's logging and tracing: not in a test process."""
    monkeypatch.setattr("keel_core.runtime.configure_logging", lambda *args: None)
    monkeypatch.setattr("keel_core.runtime.configure_tracing", lambda *args: None)


def test_a_failed_service_exits_with_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    async def serve(settings: ServiceSettings) -> None:
        raise ServiceFailed("consumer of keel.tasks failed")

    with pytest.raises(SystemExit) as exited:
        run_service("svc", ServiceSettings, serve)
    assert exited.value.code == 1
    assert "svc: stopped: consumer of keel.tasks failed" in capsys.readouterr().err


def test_a_clean_stop_exits_normally() -> None:
    async def serve(settings: ServiceSettings) -> None:
        return None

    run_service("svc", ServiceSettings, serve)
