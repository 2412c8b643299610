"""The policy in force: swapped whole by a reload, so a decision never sees half of one."""

from __future__ import annotations

from keel_policy.domain.engine import PolicyEngine


class PolicyHolder:
    def __init__(self, engine: PolicyEngine, fingerprint: str = "") -> None:
        self.engine = engine
        self.fingerprint = fingerprint

    def swap(self, engine: PolicyEngine, fingerprint: str) -> None:
        # One attribute assignment each; every request reads ``engine`` once.
        self.engine = engine
        self.fingerprint = fingerprint
