"""Settings of the memory service (env prefix ``KEEL_MEMORY_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from keel_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_MEMORY_", extra="ignore")

    grpc_port: int = 50055
    metrics_port: int = 9105
    # A Milvus Lite path ending in ".db" (a local data folder, created on first use) or a Milvus
    # server URI such as "http://milvus:19530", passed to pymilvus unchanged.
    milvus_uri: str = ".run/memory/milvus.db"
    milvus_token: str = ""
    # Client-side deadline of each Milvus call.
    milvus_timeout_s: float = Field(default=10.0, gt=0)
    # Milvus Lite only: flush its write buffer after this many written rows, because Lite
    # searches unflushed rows slowly (see adapters/milvus_store.py); 0 never flushes.
    milvus_lite_flush_every: int = Field(default=200, ge=0)
    collection: str = "keel_memory"
    embedding_dim: int = Field(default=384, ge=8)
    # Used when a Retrieve asks for 0 (proto default).
    default_token_budget: int = Field(default=1000, ge=1)
    default_top_k: int = Field(default=10, ge=1)
    max_top_k: int = Field(default=100, ge=1)
