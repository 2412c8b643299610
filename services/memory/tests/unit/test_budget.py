"""Greedy budget trimming, without a store: the rule on its own."""

from keel_memory.domain.models import MemoryEntry, MemoryHit, estimate_tokens
from keel_memory.domain.service import _fit


def hit(content: str, score: float) -> MemoryHit:
    return MemoryHit(entry=MemoryEntry.create("semantic", content), score=score)


def test_token_estimate_is_a_quarter_of_the_characters_rounded_up() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2


def test_an_item_too_big_for_the_rest_is_skipped_and_smaller_ones_still_fit() -> None:
    ranked = [hit("x" * 40, 0.9), hit("y" * 100, 0.8), hit("z" * 20, 0.7), hit("w" * 8, 0.6)]
    result = _fit(ranked, budget=13, top_k=10)
    assert [item.content[0] for item in result.items] == ["x", "w"]
    assert result.tokens_used == 12
    assert [item.tokens for item in result.items] == [10, 2]


def test_top_k_caps_the_count_and_order_follows_score() -> None:
    ranked = [hit(f"item {i}", 1 - i / 10) for i in range(5)]
    result = _fit(ranked, budget=1000, top_k=3)
    assert [item.content for item in result.items] == ["item 0", "item 1", "item 2"]
    assert result.items[0].score == 1.0
