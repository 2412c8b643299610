"""One base error for Keel, with typed subclasses.

Domain code raises these; ``keel_core.grpc.errors`` maps them to gRPC status codes in exactly one
place, and ``keel_core.grpc.client`` maps status codes back, so callers never see AioRpcError.
"""

from __future__ import annotations


class KeelError(Exception):
    """Base of every error Keel raises on purpose."""


class InvalidArgument(KeelError):
    """The caller sent something that can never succeed as sent."""


class NotFound(KeelError):
    """The named thing does not exist."""


class AlreadyExists(KeelError):
    """The thing exists already and may not be created twice."""


class Unauthenticated(KeelError):
    """The caller did not prove who it is."""


class PermissionDenied(KeelError):
    """The caller may not do this."""


class FailedPrecondition(KeelError):
    """The system is not in a state where this can be done."""


class Unavailable(KeelError):
    """A dependency cannot be reached right now; retrying may help."""


class DeadlineExceeded(KeelError):
    """The call ran out of time."""


class ResourceExhausted(KeelError):
    """A quota or budget is used up: retrying will not help until it is raised or resets."""


class ConfigError(KeelError):
    """A service cannot start with its configuration. The message is shown to the operator."""
