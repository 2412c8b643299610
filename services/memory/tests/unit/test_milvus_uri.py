import pytest
from pymilvus import MilvusException

from keel_memory.adapters import milvus_store
from keel_memory.adapters.milvus_store import MilvusStore, is_lite_path
from keel_memory.errors import StoreOpenError


def test_lite_paths_and_server_uris_are_told_apart() -> None:
    assert is_lite_path(".run/memory/milvus.db")
    assert is_lite_path("/var/lib/keel/milvus.db")
    assert not is_lite_path("http://milvus:19530")
    assert not is_lite_path("https://user:pw@milvus.example.com")
    assert not is_lite_path("tcp://10.0.0.5:19530")
    assert not is_lite_path("unix:/tmp/milvus.sock")


async def test_an_unreachable_server_is_a_clear_start_up_error() -> None:
    with pytest.raises(StoreOpenError, match="cannot open Milvus at 'http://127.0.0.1:1'"):
        await MilvusStore.open("http://127.0.0.1:1", "keel_memory", 384, timeout_s=2)


class FlakyClient:
    """Stands in for MilvusClient: fails ``failures`` times, as a Lite server still starting."""

    calls = 0
    failures = 0

    def __init__(self, **_kwargs: object) -> None:
        FlakyClient.calls += 1
        if FlakyClient.calls <= FlakyClient.failures:
            raise MilvusException(message="Fail connecting to server on unix:/tmp/x.sock")


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> type[FlakyClient]:
    FlakyClient.calls = 0
    monkeypatch.setattr(milvus_store, "MilvusClient", FlakyClient)
    monkeypatch.setattr(milvus_store.time, "sleep", lambda _s: None)
    return FlakyClient


def test_a_lite_server_slow_to_start_is_waited_for(flaky: type[FlakyClient], tmp_path) -> None:  # type: ignore[no-untyped-def]
    flaky.failures = 2
    milvus_store._connect(str(tmp_path / "m.db"), "", 5)
    assert flaky.calls == 3


def test_a_lite_file_that_never_opens_is_a_clear_error(flaky: type[FlakyClient], tmp_path) -> None:  # type: ignore[no-untyped-def]
    flaky.failures = 99
    with pytest.raises(StoreOpenError, match="another process using this file"):
        milvus_store._connect(str(tmp_path / "m.db"), "", 5)
    assert flaky.calls == milvus_store.LITE_CONNECT_ATTEMPTS


def test_a_server_uri_is_tried_once(flaky: type[FlakyClient]) -> None:
    flaky.failures = 99
    with pytest.raises(StoreOpenError):
        milvus_store._connect("http://127.0.0.1:1", "", 5)
    assert flaky.calls == 1
