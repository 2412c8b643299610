"""gRPC plumbing: server bootstrap (health, reflection, error mapping, latency metrics) and
client channels with deadlines and typed errors."""

from keel_core.grpc.client import call_with_errors, insecure_channel
from keel_core.grpc.server import GrpcServer

__all__ = ["GrpcServer", "call_with_errors", "insecure_channel"]
