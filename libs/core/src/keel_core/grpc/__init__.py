"""gRPC plumbing: server bootstrap (health, reflection, error mapping, latency metrics) and
client channels that carry the trace (the clients themselves are ``keel_clients``)."""

from keel_core.grpc.client import insecure_channel
from keel_core.grpc.server import GrpcServer

__all__ = ["GrpcServer", "insecure_channel"]
