"""From the sets as written to the rules each set enforces: ``extends`` resolved, names and
selectors checked across every file of a policy directory."""

from __future__ import annotations

from dataclasses import dataclass

from keel_policy.domain.models import PolicyBundle, PolicySet, Rule
from keel_policy.errors import PolicyFileError


@dataclass(frozen=True)
class ResolvedSet:
    name: str
    tenant: str | None
    profile: str | None
    rules: tuple[Rule, ...]
    # The candidate's rules when the set has a shadow policy.
    shadow: tuple[Rule, ...] | None


def resolve(bundle: PolicyBundle) -> list[ResolvedSet]:
    """Every set with its effective rules; raise PolicyFileError naming the file on a clash,
    an unknown ``extends`` or a cycle."""
    return _Resolver(bundle).resolve()


def merge(own: tuple[Rule, ...], inherited: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """Own rules first (they win ties of priority), then inherited ones not replaced by id."""
    ids = {rule.id for rule in own}
    return own + tuple(rule for rule in inherited if rule.id not in ids)


class _Resolver:
    def __init__(self, bundle: PolicyBundle) -> None:
        self._bundle = bundle
        self._index: dict[str, int] = {}
        self._done: dict[str, tuple[Rule, ...]] = {}
        self._check_distinct()

    def resolve(self) -> list[ResolvedSet]:
        out: list[ResolvedSet] = []
        for index, policy_set in enumerate(self._bundle.sets):
            shadow: tuple[Rule, ...] | None = None
            if policy_set.shadow is not None:
                base: tuple[Rule, ...] = ()
                if policy_set.shadow.extends is not None:
                    base = self._effective(self._known(index, policy_set.shadow.extends), ())
                shadow = merge(policy_set.shadow.rules, base)
            out.append(
                ResolvedSet(
                    name=policy_set.name,
                    tenant=policy_set.tenant,
                    profile=policy_set.profile,
                    rules=self._effective(index, ()),
                    shadow=shadow,
                )
            )
        return out

    def _effective(self, index: int, chain: tuple[str, ...]) -> tuple[Rule, ...]:
        policy_set = self._bundle.sets[index]
        name = policy_set.name
        if name in self._done:
            return self._done[name]
        if name in chain:
            cycle = " -> ".join((*chain, name))
            raise PolicyFileError(f"{self._where(index)}: extends forms a cycle: {cycle}")
        inherited: tuple[Rule, ...] = ()
        if policy_set.extends is not None:
            parent = self._known(index, policy_set.extends)
            inherited = self._effective(parent, (*chain, name))
        rules = merge(policy_set.rules, inherited)
        self._done[name] = rules
        return rules

    def _known(self, owner: int, target: str) -> int:
        if target not in self._index:
            name = self._bundle.sets[owner].name
            known = ", ".join(sorted(self._index))
            raise PolicyFileError(
                f"{self._where(owner)}: set {name!r} extends unknown set {target!r} "
                f"(known: {known})"
            )
        return self._index[target]

    def _check_distinct(self) -> None:
        selectors: dict[tuple[str | None, str | None], int] = {}
        for index, policy_set in enumerate(self._bundle.sets):
            name = policy_set.name
            if name in self._index:
                raise PolicyFileError(
                    f"{self._where(index)}: duplicate set name {name!r} "
                    f"(also in {self._where(self._index[name])})"
                )
            other = selectors.get(policy_set.selector)
            if other is not None:
                raise PolicyFileError(
                    f"{self._where(index)}: set {name!r} selects {_selector(policy_set)}, "
                    f"as does set {self._bundle.sets[other].name!r} ({self._where(other)})"
                )
            self._index[name] = index
            selectors[policy_set.selector] = index

    def _where(self, index: int) -> str:
        return self._bundle.source_of(index)


def _selector(policy_set: PolicySet) -> str:
    return f"tenant={policy_set.tenant or '*'} profile={policy_set.profile or '*'}"
