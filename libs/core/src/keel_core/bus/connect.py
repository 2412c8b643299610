"""Build and start Kafka clients: the security options every client passes, and a start that
retries until the broker answers or the configured time runs out."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.helpers import create_ssl_context

from keel_contracts.errors import ConfigError
from keel_core.settings import KafkaSettings

# How readers fetch. A fetch waits on the broker until ``fetch_min_bytes`` are there or
# ``fetch_max_wait_ms`` has passed. Readers that must see each record at once ask for one byte
# and wait up to ``IDLE_FETCH_WAIT_MS`` when nothing comes (it only spaces an idle reader's
# fetches, each a wake-up of the broker over TLS); readers that need not (tables, the event
# history of other replicas' sessions) are batched: 64 KiB or ``BATCHED_FETCH_WAIT_MS``.
IDLE_FETCH_WAIT_MS = 1000
BATCHED_FETCH_MIN_BYTES = 64 * 1024
BATCHED_FETCH_WAIT_MS = 250


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """The keyword arguments of ``AIOKafkaProducer``/``AIOKafkaConsumer``/``AIOKafkaAdminClient``
    that say how to connect: protocol, TLS context, SASL mechanism and credentials. Every client
    Keel builds passes them, so one setting secures all of them. A SASL protocol without a
    username or password is a ``ConfigError`` here rather than an opaque handshake failure.
    """
    protocol = settings.security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(settings)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = _password(settings)
        if not settings.username or not password:
            raise ConfigError(
                f"Kafka security protocol {protocol} needs KEEL_KAFKA_USERNAME and "
                "KEEL_KAFKA_PASSWORD or KEEL_KAFKA_PASSWORD_FILE"
            )
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.username
        options["sasl_plain_password"] = password
    return options


def _password(settings: KafkaSettings) -> str:
    if settings.password_file is None:
        return settings.password.get_secret_value()
    try:
        return settings.password_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        # The path is configuration, not a secret; the content never appears in a message.
        raise ConfigError(
            f"cannot read KEEL_KAFKA_PASSWORD_FILE {settings.password_file}: {exc.strerror}"
        ) from exc


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=str(settings.ssl_ca_file) if settings.ssl_ca_file else None,
            certfile=str(settings.ssl_cert_file) if settings.ssl_cert_file else None,
            keyfile=str(settings.ssl_key_file) if settings.ssl_key_file else None,
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the Kafka TLS files: {exc}") from exc
    return context


async def start_with_retry(start: Callable[[], Awaitable[None]], settings: KafkaSettings) -> None:
    """A broker that never answers becomes one clear ``ConfigError``, not a traceback."""
    deadline = time.monotonic() + settings.connect_timeout_s
    delay = 0.2
    while True:
        try:
            await start()
            return
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if time.monotonic() + delay > deadline:
                raise ConfigError(
                    f"cannot reach Kafka at {settings.bootstrap} after "
                    f"{settings.connect_timeout_s:.0f}s ({type(exc).__name__}: {exc}); "
                    "start it with `make kafka-up` or set KEEL_KAFKA_BOOTSTRAP"
                ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
