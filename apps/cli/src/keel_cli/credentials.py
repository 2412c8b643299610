"""The CLI's identity on gRPC: the operator certificate of the trust directory (mutual TLS)
and a bearer token (``KEEL_CLI_TOKEN``, else one it mints with the dev token key)."""

from __future__ import annotations

from collections.abc import Callable

from keel_cli.config import CliSettings
from keel_core.grpc import ClientCredentials, use_client_credentials
from keel_core.grpc.client import current_resolver
from keel_core.grpc.tokens import ROLES, mint_token
from keel_core.trust import TOKEN_SIGNING, TrustMaterial, load

OPERATOR = "operator"
SELF_TOKEN_TTL_S = 900.0


def install(settings: CliSettings) -> Callable[[], None]:
    """Every channel the command opens presents the operator identity; read at the first dial
    so commands that call no service need no trust material. Returns the undo (a command run
    in-process, as tests do, leaves the process as it found it)."""
    previous = current_resolver()
    loaded: list[ClientCredentials | None] = []

    def resolve(_target: str) -> ClientCredentials | None:
        if not loaded:
            loaded.append(credentials(settings))
        return loaded[0]

    use_client_credentials(resolve)
    return lambda: use_client_credentials(previous)


def credentials(settings: CliSettings) -> ClientCredentials | None:
    material = load(settings.trust, "keel")
    if material is None:
        return None
    token = settings.token or _self_token(material, settings)
    return ClientCredentials(material.tls_identity(OPERATOR), token)


def _self_token(material: TrustMaterial, settings: CliSettings) -> str:
    if not (material.directory / f"{TOKEN_SIGNING}.key").exists():
        return ""
    return mint_token(
        material.token_signing_key(),
        sub=settings.operator,
        tenant="*",
        roles=ROLES,
        ttl_s=SELF_TOKEN_TTL_S,
        issuer=settings.trust.token_issuer,
        audience=settings.trust.token_audience,
    )


def dev_token(
    settings: CliSettings, *, sub: str, tenant: str, roles: list[str], ttl_s: float
) -> str:
    """``keel dev token``: a token from the trust directory's dev key."""
    material = load(settings.trust, "keel")
    if material is None:
        raise SystemExit("keel dev token needs KEEL_TRUST_DIR (the dev token key is there)")
    return mint_token(
        material.token_signing_key(),
        sub=sub,
        tenant=tenant,
        roles=roles,
        ttl_s=ttl_s,
        issuer=settings.trust.token_issuer,
        audience=settings.trust.token_audience,
    )
