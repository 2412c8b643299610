"""The one mapping between Keel's errors and gRPC status codes, in both directions."""

from __future__ import annotations

import grpc

from keel_contracts import errors

TO_STATUS: dict[type[errors.KeelError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

FROM_STATUS: dict[grpc.StatusCode, type[errors.KeelError]] = {
    code: cls for cls, code in TO_STATUS.items()
}


def status_of(exc: BaseException) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in TO_STATUS:
            return TO_STATUS[cls]
    return grpc.StatusCode.INTERNAL


def error_from_status(code: grpc.StatusCode, details: str) -> errors.KeelError:
    return FROM_STATUS.get(code, errors.KeelError)(f"{code.name}: {details}")
