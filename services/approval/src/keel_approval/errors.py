"""Errors of the approval service.

The book raises keel_core's typed errors directly (NotFound, FailedPrecondition,
InvalidArgument), which the gRPC interceptor maps to status codes; only what is specific to
this service lives here.
"""

from __future__ import annotations

from keel_contracts.errors import PermissionDenied, Unavailable
from keel_contracts.errors import Unauthenticated as CoreUnauthenticated


class WatcherLagged(Unavailable):
    """A watcher fell too far behind; its stream is closed and it should reconnect."""


class Unauthenticated(CoreUnauthenticated):
    """A reviewer without a valid token (gRPC UNAUTHENTICATED)."""


class ForgedRecord(PermissionDenied):
    """A record on the decisions topic that the approval service did not sign (or that is
    expired, or breaks the request's rules): refused, audited as ``security.denied``."""
