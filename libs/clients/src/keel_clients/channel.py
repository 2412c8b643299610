"""Where clients get their channels: the one place that decides how Keel dials a service
(trace propagation today; transport credentials belong here too)."""

from __future__ import annotations

import grpc

from keel_core.grpc.client import insecure_channel


def open_channel(target: str) -> grpc.aio.Channel:
    """A channel to ``target`` (host:port); the caller closes it (``await channel.close()``
    or ``async with``)."""
    return insecure_channel(target)
