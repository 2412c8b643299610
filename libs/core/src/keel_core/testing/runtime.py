"""A ``Runtime`` for component tests: the service's real composition root over an in-memory
bus, with its gRPC server listening on a free loopback port.

``build(settings, InMemoryRuntime(...))`` wires exactly what production wires; the test then
``await runtime.start()``, talks to ``runtime.target`` through ``keel_clients`` or puts records
on ``runtime.bus``, and ``await runtime.stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from prometheus_client import CollectorRegistry

from keel_contracts.errors import ConfigError
from keel_core import trust
from keel_core.audit import AuditEmitter
from keel_core.bus.consumer import Handler
from keel_core.grpc.server import GrpcServer
from keel_core.runtime import GrpcService, Hook
from keel_core.settings import ServiceSettings
from keel_core.testing.bus import (
    BusPublisher,
    InMemoryBus,
    InMemoryConsumer,
    InMemoryFollower,
    InMemoryTable,
)


class InMemoryRuntime:
    def __init__(
        self, name: str, settings: ServiceSettings, bus: InMemoryBus | None = None
    ) -> None:
        self.name = name
        self.settings = settings
        self.bus = bus or InMemoryBus()
        self.registry = CollectorRegistry()
        self.producer = BusPublisher(self.bus)
        self.audit = AuditEmitter(self.producer, f"{name}@test", source=name, identity=name)
        self.consumers: list[InMemoryConsumer] = []
        self.grpc: GrpcServer | None = None
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self._stop = asyncio.Event()

    @property
    def target(self) -> str:
        """Where the started gRPC server listens."""
        if self.grpc is None or not self.grpc.port:
            raise RuntimeError(f"{self.name} serves no gRPC, or has not started")
        return f"127.0.0.1:{self.grpc.port}"

    def serve_grpc(self, services: Sequence[GrpcService]) -> None:
        self.grpc = GrpcServer("127.0.0.1", 0, services, self.registry)

    def set_serving(self, serving: bool) -> None:
        if self.grpc is not None:
            self.grpc.set_serving(serving)

    def consume(self, topics: list[str], group_id: str, handler: Handler) -> InMemoryConsumer:
        consumer = InMemoryConsumer(self.bus, topics, handler, group_id)
        self.consumers.append(consumer)
        return consumer

    def table(self, topic: str, source: str = "") -> InMemoryTable:
        table = InMemoryTable(self.bus, topic, source or self.name)
        self.on_start(table.start)
        self.on_stop(table.stop)
        return table

    def follower(self, topic: str, role: str, *, batched: bool = False) -> InMemoryFollower:
        follower = InMemoryFollower(self.bus, topic, f"{self.name}-{role}")
        self.on_stop(follower.stop)
        return follower

    def on_start(self, hook: Hook) -> None:
        self._on_start.append(hook)

    def on_stop(self, hook: Hook) -> None:
        self._on_stop.append(hook)

    def request_stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        self.audit.sign_with(_signer(self.settings, self.name))
        self.audit.start()
        for hook in self._on_start:
            await hook()
        if self.grpc is not None:
            await self.grpc.start()
        for consumer in self.consumers:
            await consumer.start()

    async def stop(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop(0)
        for consumer in self.consumers:
            await consumer.stop()
        for hook in reversed(self._on_stop):
            await hook()
        await self.audit.close()

    async def run(self) -> None:
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[InMemoryRuntime]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    async def settle(self, timeout_s: float = 5.0) -> None:
        """Wait until every consumer has handled what the bus holds for it."""
        async with asyncio.timeout(timeout_s):
            while not all(c.idle.is_set() for c in self.consumers):
                await asyncio.gather(*(c.idle.wait() for c in self.consumers))
                await asyncio.sleep(0)


def _signer(settings: ServiceSettings, name: str) -> trust.Signer | None:
    """The identity's audit signer as production has it, or None (unsigned, like the insecure
    dev mode) where the test configured no trust material or ``name`` has no key."""
    try:
        material = trust.load(settings.trust, name)
        return material.audit_signer(name) if material is not None else None
    except ConfigError:
        return None
