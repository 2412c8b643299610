"""Where clients get their channels: the one place that decides how Keel dials a service.

Mutual TLS with the given credentials, else with the process's identity (installed at start by
the service runtime or the CLI, see ``keel_core.grpc.client``), else plaintext (the insecure
dev mode and in-process component tests)."""

from __future__ import annotations

import grpc

from keel_core.grpc.client import (
    ClientCredentials,
    default_credentials,
    insecure_channel,
    secure_channel,
)


def open_channel(target: str, credentials: ClientCredentials | None = None) -> grpc.aio.Channel:
    """A channel to ``target`` (host:port); the caller closes it (``await channel.close()``
    or ``async with``)."""
    chosen = credentials or default_credentials(target)
    if chosen is None:
        return insecure_channel(target)
    return secure_channel(target, chosen)
