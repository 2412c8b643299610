"""The memory store on Milvus: Milvus Lite (a local ``.db`` file) by default, a Milvus server
for scale, with the same code and only the URI changed.

pymilvus is blocking, so every call runs in a worker thread; one ``asyncio.Lock`` keeps them one
at a time, which is what Milvus Lite (one local server process per file) copes with best. At most
``max_queued`` calls wait for (or hold) that lock: one more is refused with ``Unavailable``
at once, because a queue longer than that answers later than any caller waits. Concurrent
searches with the same filter and ``top_k`` (sessions of one tenant starting together: the same
per-type filter) ride in one Milvus search of several vectors: whichever of them gets the lock
first searches for all of them, so a burst costs one search per type instead of one per call. The
vector index and its search settings come from ``IndexSettings`` (``milvus_index.py``): FLAT on
Lite and HNSW on a server unless configured, chosen by the numbers in
docs/adr/0004-memory-embeddings-and-index.md (milvus-lite 2.5.1 rather than 3.x for the same
reason).

For a Lite path the store flushes after every ``flush_every`` written rows, so what was stored is
sealed into segments on disk at a bounded distance (measured: no cost to search, ~7% to store
throughput at 200). A Milvus server flushes on its own and is never asked to.

Tenants: each row's tenant and agent sit in its metadata JSON under reserved keys
(``milvus_filter.TENANT_KEY`` / ``AGENT_KEY``) and every search and delete filters on them
(``milvus_filter.in_scope``). Milvus Lite 2.5 has no ``not``/``exists`` in expressions, so a
row without a tenant could not be selected as the default tenant's: on open, rows written before
tenants existed are given ``default`` once (``_backfill_tenants``; counted first, so an
up-to-date collection costs two counts).

Embedders: vectors of two embedders share no space (the same text lands anywhere), so a
collection holding both would answer with garbage and no error. A collection therefore records
the embedder that made it (``embedder``, from ``embedders.embedding_space``) in its schema's
description, the one place Milvus Lite keeps such a note (it implements no collection
properties), and opening it with another embedder is a ``StoreOpenError`` (a ``ConfigError``)
naming both. A collection made before this record existed was written by minilm, openai or
hashing (the embedders of that time): those keep opening it as before; any later embedder is
refused, since its vectors certainly differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pymilvus import DataType, MilvusClient, MilvusException

from keel_contracts.errors import Unavailable
from keel_memory.adapters.milvus_filter import (
    AGENT_KEY,
    HAS_TENANT,
    TENANT_KEY,
    build_filter,
    forget_filter,
    in_list,
    in_scope,
)
from keel_memory.adapters.milvus_index import LITE_INDEX_TYPES, IndexSettings
from keel_memory.domain.models import (
    DEFAULT_SCOPE,
    DEFAULT_TENANT,
    MAX_CONTENT_BYTES,
    MAX_SESSION_ID,
    MemoryEntry,
    MemoryHit,
    MemoryScope,
    MemoryType,
    Vector,
)
from keel_memory.errors import StoreOpenError

log = logging.getLogger(__name__)

LITE_CONNECT_ATTEMPTS = 3

T = TypeVar("T")

OUTPUT_FIELDS = ["id", "type", "content", "session_id", "metadata", "created_at"]
# Upper bound on ids fetched per delete-by-session query (Milvus caps query windows at 16384).
_QUERY_WINDOW = 16_384
# A collection's schema description names its embedder after this prefix.
_EMBEDDER_NOTE = "keel-memory embedder="
# The embedders that existed before collections recorded theirs: any of them may have made an
# unrecorded collection, so they are let open one (as before); no other embedder is.
# (``openai`` with any model: "openai:<model>").
UNRECORDED_EMBEDDERS = frozenset({"minilm", "openai", "hashing"})


def is_lite_path(uri: str) -> bool:
    """A local Milvus Lite path, as opposed to a server URI (http, https, tcp, unix)."""
    return "://" not in uri and not uri.startswith("unix:")


class MilvusStore:
    """Open with ``await MilvusStore.open(...)``; ``close()`` on stop."""

    def __init__(
        self,
        client: MilvusClient,
        uri: str,
        collection: str,
        *,
        flush_every: int = 0,
        index: IndexSettings | None = None,
        max_queued: int = 0,
    ) -> None:
        self._client = client
        self._index = (index or IndexSettings()).for_backend(is_lite_path(uri))
        self._uri = uri
        self._collection = collection
        self._flush_every = flush_every if is_lite_path(uri) else 0
        self._unflushed = 0
        self._lock = asyncio.Lock()
        self._closed = False
        self._max_queued = max_queued
        self._queued = 0
        # (filter, top_k) -> searches of that shape waiting for the lock, with their answers.
        self._searches: dict[tuple[str, int], list[tuple[Vector, asyncio.Future[list[Any]]]]] = {}

    @classmethod
    async def open(
        cls,
        uri: str,
        collection: str,
        dim: int,
        *,
        token: str = "",
        timeout_s: float = 10.0,
        flush_every: int = 200,
        index: IndexSettings | None = None,
        max_queued: int = 0,
        embedder: str | None = None,
    ) -> MilvusStore:
        """``embedder``: the vector space written and read (recorded in a new collection,
        checked against an existing one); None checks nothing (tools that only copy rows)."""
        index = (index or IndexSettings()).for_backend(is_lite_path(uri))
        if is_lite_path(uri) and index.type not in LITE_INDEX_TYPES:
            raise StoreOpenError(
                f"Milvus Lite cannot build a {index.type} index "
                f"(it supports {', '.join(sorted(LITE_INDEX_TYPES))}); use a Milvus server for it"
            )
        client = await asyncio.to_thread(_connect, uri, token, timeout_s)
        try:
            index = await asyncio.to_thread(
                _ensure_collection, client, collection, dim, index, embedder
            )
        except MilvusException as exc:
            await asyncio.to_thread(client.close)
            raise StoreOpenError(f"cannot prepare collection {collection!r}: {exc}") from exc
        except StoreOpenError:
            await asyncio.to_thread(client.close)
            raise
        return cls(
            client, uri, collection, flush_every=flush_every, index=index, max_queued=max_queued
        )

    async def close(self) -> None:
        """Close the client and, for Milvus Lite, stop its in-process server so the data folder
        is flushed and unlocked now rather than at interpreter exit."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            await asyncio.to_thread(self._client.close)
            if is_lite_path(self._uri):
                await asyncio.to_thread(_release_lite, self._uri)

    async def upsert(self, entries: Sequence[tuple[MemoryEntry, Vector]]) -> None:
        rows = [_to_row(entry, vector) for entry, vector in entries]
        if rows:
            await self._call(lambda: self._write(self._client.upsert, len(rows), data=rows))

    async def search(
        self,
        vector: Vector,
        types: Sequence[MemoryType],
        filters: Mapping[str, str],
        top_k: int,
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> list[MemoryHit]:
        key = (build_filter(types, filters, scope), top_k)
        found: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._searches.setdefault(key, []).append((vector, found))
        try:
            async with self._turn():
                if not found.done():
                    # Shielded: the search answers the whole group even if this caller leaves.
                    await asyncio.shield(asyncio.ensure_future(self._search_group(key)))
        finally:
            self._forget_search(key, found)
        return [
            MemoryHit(entry=_from_row(hit["entity"]), score=float(hit["distance"]))
            for hit in await found
        ]

    async def _search_group(self, key: tuple[str, int]) -> None:
        """One Milvus search for every search of this shape waiting now; each gets its row."""
        group = self._searches.pop(key, [])
        expr, top_k = key
        try:
            result = await asyncio.to_thread(
                self._client.search,
                self._collection,
                data=[vector for vector, _ in group],
                limit=top_k,
                filter=expr,
                output_fields=OUTPUT_FIELDS,
                search_params=self._index.search_params(top_k),
            )
        except MilvusException as exc:
            failure = Unavailable(f"milvus: {exc.message}")
            for _, waiting in group:
                if not waiting.done():
                    waiting.set_exception(failure)
            return
        for (_, waiting), hits in zip(group, result, strict=True):
            if not waiting.done():
                waiting.set_result(list(hits))

    def _forget_search(self, key: tuple[str, int], found: asyncio.Future[list[Any]]) -> None:
        """A caller that left before its search ran is taken out of the group."""
        waiting = [item for item in self._searches.get(key, []) if item[1] is not found]
        if waiting:
            self._searches[key] = waiting
        else:
            self._searches.pop(key, None)

    async def ids_where(
        self,
        types: Sequence[MemoryType],
        filters: Mapping[str, str],
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> list[str]:
        expr = build_filter(types, filters, scope)

        def run() -> list[str]:
            found: list[str] = []
            iterator = self._client.query_iterator(
                self._collection, batch_size=1000, filter=expr, output_fields=["id"]
            )
            try:
                while rows := iterator.next():
                    found += [str(row["id"]) for row in rows]
            finally:
                iterator.close()
            return found

        return await self._call(run)

    async def delete(self, ids: Sequence[str], scope: MemoryScope = DEFAULT_SCOPE) -> int:
        if not ids:
            return 0
        return await self._delete_matching(in_scope(in_list("id", ids), scope))

    async def delete_where(
        self,
        *,
        session_id: str = "",
        created_before: datetime | None = None,
        types: Sequence[MemoryType] = (),
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> int:
        if not session_id and created_before is None:
            raise ValueError("delete_where needs a session_id or created_before")
        expr = forget_filter(session_id, created_before, types, scope)
        if not expr:
            raise ValueError("delete_where needs a session_id or created_before")
        return await self._delete_matching(expr)

    async def _delete_matching(self, expr: str) -> int:
        """Delete by id what ``expr`` matches and count it. Milvus Lite answers a delete with
        the ids and a server with ``delete_count``, and neither says how many existed; a query
        first gives one count for both."""

        def run() -> int:
            deleted: set[str] = set()
            while True:
                rows = self._client.query(
                    self._collection, filter=expr, output_fields=["id"], limit=_QUERY_WINDOW
                )
                ids = [row["id"] for row in rows if row["id"] not in deleted]
                if not ids:
                    return len(deleted)
                self._write(self._client.delete, len(ids), ids=ids)
                deleted.update(ids)

        return await self._call(run)

    def _write(self, op: Callable[..., object], rows: int, **kwargs: Any) -> None:
        """Run a write (in the worker thread, under the lock) and flush Lite's buffer when due."""
        op(self._collection, **kwargs)
        self._unflushed += rows
        if self._flush_every and self._unflushed >= self._flush_every:
            self._client.flush(self._collection)
            self._unflushed = 0

    async def _call(self, fn: Callable[[], T]) -> T:
        async with self._turn():
            try:
                return await asyncio.to_thread(fn)
            except MilvusException as exc:
                raise Unavailable(f"milvus: {exc.message}") from exc

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Hold the lock, or be refused at once when ``max_queued`` calls already want it."""
        if self._max_queued and self._queued >= self._max_queued:
            raise Unavailable(
                f"memory store busy: {self._queued} calls queued (limit {self._max_queued}); "
                "try again shortly"
            )
        self._queued += 1
        try:
            async with self._lock:
                yield
        finally:
            self._queued -= 1


def _connect(uri: str, token: str, timeout_s: float) -> MilvusClient:
    if is_lite_path(uri):
        if not uri.endswith(".db"):
            raise StoreOpenError(
                f"milvus_uri {uri!r}: a Milvus Lite path must end in .db "
                "(or give a server URI such as http://host:19530)"
            )
        if Path(uri).is_dir():
            raise StoreOpenError(
                f"milvus_uri {uri!r} is a folder, as milvus-lite 3.x wrote it; milvus-lite 2.5 "
                "keeps a .db file: move the folder away (or `make clean` for local runs)"
            )
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    # Milvus Lite starts a server process and connects over a unix socket; on a busy machine
    # the first connection can come too early. A lock held by another process fails the same
    # way every time, so a few tries cost little either way.
    attempts = LITE_CONNECT_ATTEMPTS if is_lite_path(uri) else 1
    for attempt in range(1, attempts + 1):
        try:
            with warnings.catch_warnings():
                # milvus-lite 2.5 imports pkg_resources, which warns that it is deprecated.
                warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
                return MilvusClient(uri=uri, token=token, timeout=timeout_s)
        except MilvusException as exc:
            if attempt < attempts:
                log.warning("Milvus Lite at %s not ready (%s); trying again", uri, exc.message)
                time.sleep(attempt)
                continue
            hint = " (is another process using this file?)" if is_lite_path(uri) else ""
            raise StoreOpenError(f"cannot open Milvus at {uri!r}{hint}: {exc.message}") from exc
    raise AssertionError("unreachable")


def _ensure_collection(
    client: MilvusClient, name: str, dim: int, index: IndexSettings, embedder: str | None = None
) -> IndexSettings:
    """Create the collection if missing; the index settings searches must use (those of the
    index the collection really has)."""
    if client.has_collection(name):
        description = client.describe_collection(name)
        found = _vector_dim(description)
        if found != dim:
            raise StoreOpenError(
                f"collection {name!r} holds {found}-dimensional vectors, embedding_dim is {dim}"
            )
        if embedder is not None:
            _check_embedder(name, recorded_embedder(description), embedder)
        index = _existing_index(client, name, index)
    else:
        schema = MilvusClient.create_schema(
            auto_id=False,
            enable_dynamic_field=False,
            description=_EMBEDDER_NOTE + embedder if embedder else "",
        )
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("type", DataType.VARCHAR, max_length=16)
        schema.add_field("content", DataType.VARCHAR, max_length=MAX_CONTENT_BYTES)
        schema.add_field("session_id", DataType.VARCHAR, max_length=MAX_SESSION_ID)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("created_at", DataType.INT64)
        params = client.prepare_index_params()
        params.add_index(field_name="vector", **index.index_params())
        client.create_collection(
            name, schema=schema, index_params=params, consistency_level="Strong"
        )
        log.info("created Milvus collection %s (dim %d, index %s)", name, dim, index.type)
    client.load_collection(name)
    _backfill_tenants(client, name)
    return index


def recorded_embedder(description: Mapping[str, Any]) -> str | None:
    """The embedder a collection records, or None for one made before collections recorded it."""
    note = str(description.get("description") or "")
    return note.removeprefix(_EMBEDDER_NOTE) if note.startswith(_EMBEDDER_NOTE) else None


def _check_embedder(name: str, recorded: str | None, embedder: str) -> None:
    family = embedder.split(":", 1)[0]
    if recorded == embedder or (recorded is None and family in UNRECORDED_EMBEDDERS):
        return
    made_by = (
        f"was made by the {recorded} embedder"
        if recorded is not None
        else f"was made before collections recorded their embedder (by one of "
        f"{', '.join(sorted(UNRECORDED_EMBEDDERS))})"
    )
    raise StoreOpenError(
        f"collection {name!r} {made_by}; the configured embedder is {embedder}, whose vectors "
        "would not match its own: set KEEL_MEMORY_COLLECTION to another collection (or the "
        "embedder back), and store the memories again through it"
    )


def _count(client: MilvusClient, name: str, expr: str) -> int:
    [row] = client.query(name, filter=expr, output_fields=["count(*)"])
    return int(row["count(*)"])


def _backfill_tenants(client: MilvusClient, name: str, batch: int = 1000) -> int:
    """Give every row written before tenants existed the tenant ``default`` (how many). Rows
    are rewritten whole, same id, so nothing else about them changes."""
    if _count(client, name, "") == _count(client, name, HAS_TENANT):
        return 0
    fields = [*OUTPUT_FIELDS, "vector"]
    iterator = client.query_iterator(
        name, batch_size=batch, filter='id != ""', output_fields=fields
    )
    done = 0
    try:
        while rows := iterator.next():
            legacy = [row for row in rows if TENANT_KEY not in (row.get("metadata") or {})]
            for row in legacy:
                row["metadata"] = {**(row.get("metadata") or {}), TENANT_KEY: DEFAULT_TENANT}
                row["metadata"].setdefault(AGENT_KEY, "")
            if legacy:
                client.upsert(name, data=legacy)
                done += len(legacy)
    finally:
        iterator.close()
    client.flush(name)
    log.info(
        "collection %s: %d entries from before tenants filed under %r", name, done, DEFAULT_TENANT
    )
    return done


def _existing_index(client: MilvusClient, name: str, index: IndexSettings) -> IndexSettings:
    """An existing collection keeps its index (a rebuild at start-up would stall the service);
    say so when the configuration asks for another one, and search the index that is there."""
    try:
        existing = str(client.describe_index(name, "vector").get("index_type", ""))
    except MilvusException:
        return index
    if not existing or existing == index.type:
        return index
    log.warning(
        "collection %s has a %s index, configured %s: keeping %s (a new collection gets %s)",
        name,
        existing,
        index.type,
        existing,
        index.type,
    )
    if existing in ("HNSW", "FLAT", "IVF_FLAT", "AUTOINDEX"):
        return index.model_copy(update={"type": existing})
    return IndexSettings(type="FLAT")


def _vector_dim(description: Mapping[str, Any]) -> int | None:
    for field in description.get("fields", []):
        if field.get("name") == "vector":
            return int(field.get("params", {}).get("dim", 0))
    return None


def _release_lite(uri: str) -> None:
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # a server URI never gets here; Lite is a dependency
        return
    server_manager_instance.release_server(uri)


def _to_row(entry: MemoryEntry, vector: Vector) -> dict[str, Any]:
    return {
        "id": entry.id,
        "vector": vector,
        "type": entry.type,
        "content": entry.content,
        "session_id": entry.session_id,
        "metadata": {**entry.metadata, TENANT_KEY: entry.tenant, AGENT_KEY: entry.agent},
        "created_at": int(entry.created_at.timestamp() * 1000),
    }


def _from_row(row: Mapping[str, Any]) -> MemoryEntry:
    metadata = {str(k): str(v) for k, v in (row.get("metadata") or {}).items()}
    tenant = metadata.pop(TENANT_KEY, "") or DEFAULT_TENANT
    agent = metadata.pop(AGENT_KEY, "")
    return MemoryEntry(
        id=row["id"],
        type=row["type"],
        content=row["content"],
        metadata=metadata,
        session_id=row.get("session_id") or "",
        created_at=datetime.fromtimestamp(row["created_at"] / 1000, tz=UTC),
        tenant=tenant,
        agent=agent,
    )
