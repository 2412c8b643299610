"""What an operator sets: limits per key kind, and which gRPC methods count against which.

Every service reads one ``RateLimitSettings`` from ``KEEL_<SVC>_RATE_LIMITS`` (JSON). Empty
means off: no rule, no bucket, no topic traffic, so nothing changes for a deployment that
does not ask for limits.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat


class Limit(BaseModel):
    """``rate`` tokens a second, at most ``burst`` at once. One call or task costs 1, so a
    burst below 1 would refuse everything forever: refused as a setting instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: PositiveFloat
    burst: float = Field(ge=1)


class MethodLimit(BaseModel):
    """Calls of the gRPC methods starting with ``methods`` count against the bucket of
    ``kind`` for the key read from the request at ``key``: field paths separated by ``|``,
    the first non-empty one wins (``tenant|context.tenant``, ``call.name``, ``model``). A
    request with none of them counts under ``-`` (e.g. a model left to the gateway's routing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    methods: str = Field(min_length=1)
    kind: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    key: str = "tenant|context.tenant"


class RateLimitSettings(BaseModel):
    """The limits of one service.

    ``limits`` maps a key kind (``calls``, ``submit``, ``tasks``, ``tool``, ``model``) to its
    default limit, and ``<kind>:<key>`` to the limit of one key (``tool:send_email``,
    ``submit:acme`` for the tenant acme). ``grpc`` names the methods that count; left unset,
    the service's own rules apply (``with_default_rules``), so an operator usually sets only
    ``limits``. ``shared`` makes every replica of the service fold each other's spend from
    ``keel.ratelimit.spend`` (ADR 0012).
    """

    model_config = ConfigDict(extra="forbid")

    limits: dict[str, Limit] = Field(default_factory=dict)
    grpc: list[MethodLimit] | None = None
    shared: bool = False
    # How often a replica publishes what it let through (the share's lag, with the follow).
    publish_interval_s: PositiveFloat = 0.25

    def limit_of(self, kind: str, key: str) -> Limit | None:
        """The key's own limit, else its kind's, else None (unlimited)."""
        return self.limits.get(f"{kind}:{key}") or self.limits.get(kind)

    @property
    def enabled(self) -> bool:
        return bool(self.limits)

    def with_default_rules(self, rules: list[MethodLimit]) -> RateLimitSettings:
        """These settings with the service's rules when the operator named none."""
        if self.grpc is not None:
            return self
        return self.model_copy(update={"grpc": list(rules)})


TENANT = "tenant|context.tenant"


def rule(methods: str, kind: str, key: str = TENANT) -> MethodLimit:
    """One rule, for the services' default lists."""
    return MethodLimit(methods=methods, kind=kind, key=key)
