import pytest

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
