"""A service's gRPC security profile, built from its trust settings: the secured profile
whenever there is trust material, plaintext only in the insecure dev mode (warned at start)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from keel_core.audit import AuditEmitter
from keel_core.grpc.auth import DENIED, DeniedHook
from keel_core.grpc.client import ClientCredentials, current_resolver, use_client_credentials
from keel_core.grpc.server import ServerSecurity
from keel_core.grpc.tokens import TokenVerifier
from keel_core.trust import TrustMaterial, TrustSettings, load

log = logging.getLogger(__name__)


def token_verifier(material: TrustMaterial, settings: TrustSettings) -> TokenVerifier:
    return TokenVerifier(
        material.token_verify_keys(settings),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        reviewer_tokens=settings.reviewer_tokens,
    )


def server_security(
    service: str, settings: TrustSettings, audit: AuditEmitter | None = None
) -> ServerSecurity | None:
    """The secured profile of ``service`` (its certificate, the token keys, refusals audited),
    or None in the insecure dev mode."""
    material = load(settings, service)
    if material is None:
        log.warning(
            "%s serves gRPC WITHOUT TLS or caller authentication (KEEL_TRUST_INSECURE_DEV): "
            "any caller may call any method; never run so beyond a laptop",
            service,
        )
        return None
    return ServerSecurity(
        tls=material.tls_identity(service),
        verifier=token_verifier(material, settings),
        on_denied=audit_denied(audit, service) if audit is not None else None,
    )


def install_client_identity(service: str, settings: TrustSettings) -> Callable[[], None]:
    """Every channel this process opens presents ``service``'s certificate (plaintext in the
    insecure dev mode). Read at the first dial: a process that calls no service needs none,
    and one whose certificate is missing stops there with a ``ConfigError`` naming the file."""
    previous = current_resolver()
    material = load(settings, service)
    if material is None:
        return lambda: None
    loaded: list[ClientCredentials] = []

    def resolve(_target: str) -> ClientCredentials:
        if not loaded:
            loaded.append(ClientCredentials(material.tls_identity(service)))
        return loaded[0]

    use_client_credentials(resolve)
    return lambda: use_client_credentials(previous)


def audit_denied(audit: AuditEmitter, service: str) -> DeniedHook:
    async def record(method: str, who: str, reason: str, code: str) -> None:
        await audit.record(
            DENIED,
            actor=who,
            subject=method,
            details={"reason": reason, "code": code, "service": service, "wire": "grpc"},
        )

    return record
