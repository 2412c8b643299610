"""Fitting ranked hits into a token budget: the rule on its own, without store or embedder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from keel_memory.domain.models import (
    MemoryHit,
    MemoryItem,
    MemoryType,
    Retrieval,
    estimate_tokens,
)


def fit(
    ranked: Sequence[MemoryHit],
    budget: int,
    top_k: int,
    type_budgets: Mapping[MemoryType, int] | None = None,
) -> Retrieval:
    """Take hits greedily in the order given (best first), at most ``top_k`` of them.

    A hit that does not fit what is left of ``budget``, or of its type's own cap in
    ``type_budgets`` (0 or absent: no cap of its own), is skipped, and smaller hits after it may
    still fit: a long entry never blocks the short relevant ones behind it. Greedy rather than
    optimal packing on purpose: the best-scored items are what the caller asked for, and the
    result stays predictable (a knapsack would trade a top hit for two mediocre ones).
    """
    caps = {type_: cap for type_, cap in (type_budgets or {}).items() if cap > 0}
    used_by_type: dict[MemoryType, int] = {}
    items: list[MemoryItem] = []
    used = 0
    for hit in ranked:
        if len(items) == top_k:
            break
        tokens = estimate_tokens(hit.entry.content)
        type_ = hit.entry.type
        if used + tokens > budget:
            continue
        if type_ in caps and used_by_type.get(type_, 0) + tokens > caps[type_]:
            continue
        used += tokens
        used_by_type[type_] = used_by_type.get(type_, 0) + tokens
        items.append(MemoryItem(**hit.entry.model_dump(), score=hit.score, tokens=tokens))
    return Retrieval(items=tuple(items), tokens_used=used, token_budget=budget)
