"""The lifecycle every service shares: start in order, serve until SIGTERM/SIGINT, stop in the
reverse order (stop taking work, finish what is in hand, commit, flush, exit 0).

A service's ``app.py`` has one shape: ``build(settings, runtime)`` wires its parts onto a
``Runtime`` and ``serve(settings)`` builds on a ``ServiceRuntime`` and runs it;
``run_service`` turns configuration errors into one clear line and exit code 2. Everything a
service takes from the bus (consumers, compacted tables, group-less followers) comes from the
runtime, so a component test builds the same composition root on
``keel_core.testing.InMemoryRuntime``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from keel_contracts.errors import ConfigError
from keel_contracts.events import Envelope
from keel_core import trust
from keel_core.audit import AuditEmitter, read_latest_head, run_producer_id
from keel_core.bus.admin import ensure_topics
from keel_core.bus.consumer import EventConsumer, Handler
from keel_core.bus.follower import Apply, TopicFollower
from keel_core.bus.metrics import BusMetrics
from keel_core.bus.producer import EventProducer, Publisher
from keel_core.bus.table import CompactedTable, Table
from keel_core.gc_pauses import GcPauses, freeze_startup_heap
from keel_core.grpc.security import install_client_identity, server_security
from keel_core.grpc.server import AddServicer, GrpcServer
from keel_core.logging import configure_logging
from keel_core.metrics import serve_metrics
from keel_core.settings import ServiceSettings
from keel_core.tracing_export import configure_tracing

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]
GrpcService = tuple[Any, AddServicer, str]


class Follower(Protocol):
    """A group-less reader of one topic (``keel_core.bus.follower.TopicFollower``)."""

    async def load(self) -> list[Envelope]: ...

    async def start_at_end(self) -> None: ...

    def follow(self, apply: Apply) -> None: ...

    async def stop(self) -> None: ...


class Runtime(Protocol):
    """What a composition root wires onto: metrics, the producer and audit, the gRPC server,
    consumers, tables and followers, start and stop hooks."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> ServiceSettings: ...

    @property
    def registry(self) -> CollectorRegistry: ...

    @property
    def producer(self) -> Publisher: ...

    @property
    def audit(self) -> AuditEmitter: ...

    def serve_grpc(self, services: Sequence[GrpcService]) -> None: ...

    def set_serving(self, serving: bool) -> None:
        """What gRPC health reports (SERVING / NOT_SERVING), for a dependency that comes and
        goes while the service runs."""
        ...

    def consume(self, topics: list[str], group_id: str, handler: Handler) -> object: ...

    def table(self, topic: str, source: str = "") -> Table:
        """A started-with-the-service view of a compacted topic (loaded before consumers)."""
        ...

    def follower(self, topic: str, role: str, *, batched: bool = False) -> Follower:
        """A group-less follower, stopped with the service; the caller loads or starts it.
        ``batched``: it need not see each record at once (``TopicFollower``)."""
        ...

    def on_start(self, hook: Hook) -> None: ...

    def on_stop(self, hook: Hook) -> None: ...

    def request_stop(self) -> None: ...

    async def run(self) -> None: ...


class ServiceFailed(Exception):
    """The service stopped on its own because a part of it failed; it exits with code 1."""


class ServiceRuntime:
    def __init__(self, name: str, settings: ServiceSettings) -> None:
        self.name = name
        self.settings = settings
        self.registry = CollectorRegistry()
        self.bus_metrics = BusMetrics(self.registry)
        self.gc_pauses = GcPauses(self.registry)
        self.producer = EventProducer(settings.kafka, name, self.bus_metrics)
        # Unique per run: host name and pid repeat across container restarts.
        self.producer_id = run_producer_id(name)
        self.audit = AuditEmitter(
            self.producer,
            self.producer_id,
            source=name,
            wait_for_ack=settings.audit_sync,
            identity=name,
        )
        self.grpc: GrpcServer | None = None
        self.consumers: list[EventConsumer] = []
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        # Why the service stopped on its own (a consumer loop died), if it did.
        self._failure = ""

    def serve_grpc(self, services: Sequence[GrpcService]) -> None:
        # Mutual TLS and the authorization table unless in the insecure dev mode (identity: the
        # service's name; refusals audited as security.denied).
        security = server_security(self.name, self.settings.trust, self.audit)
        self.grpc = GrpcServer(
            self.settings.host, self.settings.grpc_port, services, self.registry, security
        )

    def set_serving(self, serving: bool) -> None:
        if self.grpc is not None:
            self.grpc.set_serving(serving)

    def consume(self, topics: list[str], group_id: str, handler: Handler) -> EventConsumer:
        consumer = EventConsumer(
            self.settings.kafka,
            topics=topics,
            group_id=group_id,
            handler=handler,
            dlq_producer=self.producer,
            metrics=self.bus_metrics,
        )
        self.consumers.append(consumer)
        return consumer

    def table(self, topic: str, source: str = "") -> CompactedTable:
        table = CompactedTable(self.settings.kafka, topic, self.producer, source or self.name)
        self.on_start(table.start)
        self.on_stop(table.stop)
        return table

    def follower(self, topic: str, role: str, *, batched: bool = False) -> TopicFollower:
        follower = TopicFollower(self.settings.kafka, topic, f"{self.name}-{role}", batched=batched)
        self.on_stop(follower.stop)
        return follower

    def on_start(self, hook: Hook) -> None:
        self._on_start.append(hook)

    def on_stop(self, hook: Hook) -> None:
        self._on_stop.append(hook)

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            material = trust.load(self.settings.trust, self.name)
            await ensure_topics(self.settings.kafka)
            await self.producer.start()
            await self._prepare_audit(material)
        except ConfigError:
            await self.producer.stop()
            await self._run_stop_hooks()
            raise
        self.audit.start()
        try:
            await self._start_parts()
            await self._stop.wait()
            log.info("%s stopping", self.name)
        finally:
            await self._stop_parts()
        log.info("%s stopped", self.name)
        if self._failure:
            # Not a clean stop: exit non-zero so an orchestrator that restarts only failed
            # processes (Kubernetes' OnFailure, systemd's on-failure) restarts this one.
            raise ServiceFailed(self._failure)

    async def _prepare_audit(self, material: trust.TrustMaterial | None) -> None:
        """Sign as this service's identity and continue its chain after its latest signed head,
        so a restart links to the run before it instead of starting a new history."""
        signer = material.audit_signer(self.name) if material is not None else None
        self.audit.sign_with(signer)
        try:
            head = await read_latest_head(
                self.settings.kafka, self.name, signer.public if signer else None
            )
        except Exception:  # noqa: BLE001 - a fresh chain is verifiable, only not linked
            log.warning("audit chain head of %s not readable; starting a new chain", self.name)
            head = None
        self.audit.link(head)

    async def _start_parts(self) -> None:
        metrics_port = serve_metrics(self.registry, self.settings.host, self.settings.metrics_port)
        for hook in self._on_start:
            await hook()
        # What the start hooks loaded (tables, policies, models) lives as long as the process:
        # full collections stop walking it (keel_core.gc_pauses). Pauses count from here on,
        # the start-up's own full collection left out.
        frozen = freeze_startup_heap()
        self.gc_pauses.install()
        if self.grpc:
            await self.grpc.start()
        for consumer in self.consumers:
            await consumer.start()
            self._tasks.append(asyncio.create_task(self._supervise(consumer)))
        log.info(
            "%s ready: grpc=%s metrics=http://%s:%d/metrics (%d start-up objects frozen)",
            self.name,
            f"{self.settings.host}:{self.grpc.port}" if self.grpc else "-",
            self.settings.host,
            metrics_port,
            frozen,
        )

    async def _supervise(self, consumer: EventConsumer) -> None:
        """A consumer loop that dies stops the service: better a restart than a silent stall."""
        try:
            await consumer.run()
        except Exception as exc:
            log.exception("consumer loop failed; stopping %s", self.name)
            self._failure = f"consumer of {', '.join(consumer.topics)} failed: {exc!r}"
            self._stop.set()

    async def _stop_parts(self) -> None:
        if self.grpc:
            await self.grpc.stop(self.settings.shutdown_grace_s)
        for consumer in self.consumers:
            await consumer.stop()
        if self._tasks:
            await asyncio.wait(self._tasks)
        for consumer in self.consumers:
            await consumer.close(self.settings.drain_timeout_s)
        await self._run_stop_hooks()
        await self.audit.close()
        await self.producer.stop()
        self.gc_pauses.uninstall()

    async def _run_stop_hooks(self) -> None:
        for hook in reversed(self._on_stop):
            await hook()


def run_service(
    name: str,
    settings_factory: Callable[[], ServiceSettings],
    serve: Callable[[Any], Coroutine[Any, Any, None]],
) -> None:
    """Build settings, configure logs, run ``serve(settings)``; exit 2 with one line on bad
    configuration, 0 on a clean stop."""
    try:
        settings = settings_factory()
    except ValidationError as exc:
        _die(name, f"invalid configuration: {exc}")
    configure_logging(name, settings.log_level, settings.log_json)
    stop_tracing = configure_tracing(name, settings.tracing)
    restore_identity: Callable[[], None] = lambda: None  # noqa: E731
    try:
        # The channels the service opens present its certificate.
        restore_identity = install_client_identity(name, settings.trust)
        asyncio.run(serve(settings))
    except ConfigError as exc:
        _die(name, str(exc))
    except ServiceFailed as exc:
        print(f"{name}: stopped: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    except KeyboardInterrupt:
        pass
    finally:
        restore_identity()
        if stop_tracing:
            stop_tracing()


def _die(name: str, message: str) -> None:
    print(f"{name}: error: {message}", file=sys.stderr)
    raise SystemExit(2)
