"""Greedy budget trimming, without a store: the rule on its own."""

from keel_memory.domain.budget import fit
from keel_memory.domain.models import MemoryEntry, MemoryHit, MemoryType, estimate_tokens


def hit(content: str, score: float, type_: MemoryType = "semantic") -> MemoryHit:
    return MemoryHit(entry=MemoryEntry.create(type_, content), score=score)


def test_token_estimate_is_a_quarter_of_the_characters_rounded_up() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2


def test_an_item_too_big_for_the_rest_is_skipped_and_smaller_ones_still_fit() -> None:
    ranked = [hit("x" * 40, 0.9), hit("y" * 100, 0.8), hit("z" * 20, 0.7), hit("w" * 8, 0.6)]
    result = fit(ranked, budget=13, top_k=10)
    assert [item.content[0] for item in result.items] == ["x", "w"]
    assert result.tokens_used == 12
    assert [item.tokens for item in result.items] == [10, 2]


def test_top_k_caps_the_count_and_order_follows_score() -> None:
    ranked = [hit(f"item {i}", 1 - i / 10) for i in range(5)]
    result = fit(ranked, budget=1000, top_k=3)
    assert [item.content for item in result.items] == ["item 0", "item 1", "item 2"]
    assert result.items[0].score == 1.0


def test_a_type_cap_stops_that_type_and_leaves_room_for_the_others() -> None:
    ranked = [
        hit("e" * 40, 0.95, "episodic"),  # 10 tokens
        hit("f" * 40, 0.90, "episodic"),  # 10: over the episodic cap of 15
        hit("s" * 40, 0.80, "semantic"),  # 10
        hit("g" * 16, 0.70, "episodic"),  # 4: still fits the episodic cap
        hit("p" * 40, 0.60, "procedural"),  # 10: no cap of its own
    ]
    result = fit(ranked, budget=100, top_k=10, type_budgets={"episodic": 15})
    assert [item.content[0] for item in result.items] == ["e", "s", "g", "p"]
    assert sum(i.tokens for i in result.items if i.type == "episodic") == 14
    assert result.tokens_used == 34


def test_the_global_budget_still_binds_under_type_caps_and_zero_means_no_cap() -> None:
    ranked = [hit("a" * 40, 0.9, "semantic"), hit("b" * 40, 0.8, "procedural")]
    capped = fit(ranked, budget=12, top_k=10, type_budgets={"semantic": 50, "procedural": 50})
    assert [item.content[0] for item in capped.items] == ["a"]
    uncapped = fit(ranked, budget=100, top_k=10, type_budgets={"semantic": 0})
    assert len(uncapped.items) == 2
