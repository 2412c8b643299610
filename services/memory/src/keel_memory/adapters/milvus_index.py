"""Which vector index the memory collection gets, and how it is searched.

Chosen by measurement (docs/adr/0004-memory-embeddings-and-index.md, ``bench/memory.py``):
unset, the type is FLAT on Milvus Lite and HNSW on a Milvus server. Lite 2.5 accepts only FLAT,
IVF_FLAT and AUTOINDEX and serves the last two from a fixed interim index whatever the settings
(recall@10 0.94–0.97 at 100k entries), while FLAT there is exact and fast enough (~18 ms at 100k);
a server builds and honours real HNSW indexes. An existing collection keeps the index it was
created with: rebuilding an index on start-up would stall the service for as long as the build
takes, so a different setting is logged and takes effect on a new collection.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IndexType = Literal["HNSW", "FLAT", "IVF_FLAT", "AUTOINDEX"]
# What Milvus Lite (2.5) can create; anything else fails at create_index.
LITE_INDEX_TYPES: frozenset[str] = frozenset({"FLAT", "IVF_FLAT", "AUTOINDEX"})


class IndexSettings(BaseModel):
    """``KEEL_MEMORY_INDEX__TYPE``, ``…__M``, ``…__EF_CONSTRUCTION``, ``…__EF``, ``…__NLIST``,
    ``…__NPROBE``; each parameter is used only by the index type it belongs to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # None: FLAT on Milvus Lite, HNSW on a server (see ``for_backend``).
    type: IndexType | None = None
    # HNSW graph degree and build-time candidate list: recall vs memory and build time.
    m: int = Field(default=16, ge=4, le=64)
    ef_construction: int = Field(default=200, ge=8, le=1024)
    # HNSW search-time candidate list: recall vs latency (at least top_k is used).
    ef: int = Field(default=64, ge=1, le=4096)
    # IVF_FLAT: clusters, and how many are searched.
    nlist: int = Field(default=1024, ge=1, le=65536)
    nprobe: int = Field(default=32, ge=1, le=65536)

    def for_backend(self, lite: bool) -> IndexSettings:
        """These settings with the type decided: the configured one, else the backend's default."""
        if self.type is not None:
            return self
        return self.model_copy(update={"type": "FLAT" if lite else "HNSW"})

    def index_params(self) -> dict[str, Any]:
        """Keyword arguments of ``IndexParams.add_index`` for the vector field."""
        params: dict[str, Any] = {}
        if self.type == "HNSW":
            params = {"M": self.m, "efConstruction": self.ef_construction}
        elif self.type == "IVF_FLAT":
            params = {"nlist": self.nlist}
        return {"index_type": self.type, "metric_type": "COSINE", "params": params}

    def search_params(self, top_k: int) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.type in ("HNSW", "AUTOINDEX"):
            params = {"ef": max(self.ef, top_k)}
        elif self.type == "IVF_FLAT":
            params = {"nprobe": min(self.nprobe, self.nlist)}
        return {"metric_type": "COSINE", "params": params}
