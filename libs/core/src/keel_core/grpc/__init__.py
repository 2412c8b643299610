"""gRPC plumbing: server bootstrap (health, error mapping, latency metrics, mutual TLS and the
authorization interceptor) and client channels that carry the trace and the process's
identity (the clients themselves are ``keel_clients``)."""

from keel_core.grpc.client import (
    ClientCredentials,
    insecure_channel,
    secure_channel,
    use_client_credentials,
)
from keel_core.grpc.server import GrpcServer, ServerSecurity

__all__ = [
    "ClientCredentials",
    "GrpcServer",
    "ServerSecurity",
    "insecure_channel",
    "secure_channel",
    "use_client_credentials",
]
