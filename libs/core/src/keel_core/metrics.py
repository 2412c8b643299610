"""The Prometheus endpoint of a service, serving the registry the service owns (never global)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server

from keel_contracts.errors import ConfigError


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> int:
    """Serve ``/metrics`` on a daemon thread; returns the bound port (``port=0`` picks one)."""
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    return int(server.server_port)
