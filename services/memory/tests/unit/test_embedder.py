import math

from keel_memory.adapters.hashing_embedder import HashingEmbedder, features


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_vectors_are_deterministic_unit_length_and_of_the_configured_dim() -> None:
    embedder = HashingEmbedder(384)
    [first, again] = await embedder.embed(["The cat sat", "The cat sat"])
    assert first == again
    assert len(first) == 384
    assert math.isclose(math.sqrt(sum(v * v for v in first)), 1.0)
    # A fresh instance (as in another process) gives the same vector: no per-process hash seed.
    assert HashingEmbedder(384).vector("The cat sat") == first


def test_features_are_lowercased_unigrams_and_bigrams() -> None:
    assert features("Deploy the APP") == ["deploy", "the", "app", "deploy the", "the app"]
    assert features("  ?! ") == ["?!"]
    assert features("   ") == []


def test_texts_sharing_words_score_higher_than_unrelated_ones() -> None:
    embed = HashingEmbedder(384).vector
    query = embed("how do I restart the payment service")
    related = embed("to restart the payment service run systemctl restart payments")
    unrelated = embed("the cafeteria serves lasagne on fridays")
    assert cosine(query, related) > cosine(query, unrelated) + 0.2
    assert math.isclose(cosine(embed("Payment Service"), embed("payment service")), 1.0)


def test_no_text_maps_to_the_zero_vector() -> None:
    embed = HashingEmbedder(64).vector
    for text in ["", "   ", "!!!", "a"]:
        vector = embed(text)
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0)
