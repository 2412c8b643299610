"""The ``minilm-static`` embedder with the real distilled table (the cache ``make install``
fills; distilled here on first use if it is missing, ~40 s once)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from keel_contracts.errors import ConfigError
from keel_memory.adapters.embedders import build_embedder, embedding_space
from keel_memory.adapters.minilm import find_model_dir
from keel_memory.adapters.static import SPACE, StaticEmbedder
from keel_memory.adapters.static.embedder import INLINE_MAX_CHARS
from keel_memory.config import Settings

# The first test may distil the table (~40 s on an idle 2-core machine, several times that
# under load) when `make install` has not cached it yet.
pytestmark = pytest.mark.timeout(600)

TEXTS = [
    "The cat sat on the mat.",
    "Restart the payment service with systemctl.",
    "Invoices are archived to the finance bucket every night.",
]


@pytest.fixture(scope="module")
def embedder() -> StaticEmbedder:
    return StaticEmbedder.load(find_model_dir())


async def test_vectors_are_384_dimensional_unit_vectors(embedder: StaticEmbedder) -> None:
    vectors = await embedder.embed([*TEXTS, "", "   "])
    assert embedder.dim == 384
    assert [len(v) for v in vectors] == [384] * 5
    assert np.allclose(np.linalg.norm(np.array(vectors), axis=1), 1.0, atol=1e-5)


def test_vectors_are_deterministic_across_loads_and_batches(embedder: StaticEmbedder) -> None:
    """Stored vectors are compared with query vectors made in another process, another day:
    the same text must give the same vector whatever it is embedded with."""
    again = StaticEmbedder.load(find_model_dir())
    batch = embedder.encode(TEXTS)
    assert np.array_equal(batch, again.encode(TEXTS))
    for row, text in zip(batch, TEXTS, strict=True):
        assert np.allclose(row, embedder.encode([text])[0], atol=1e-6)


@pytest.mark.parametrize(
    ("query", "related", "unrelated"),
    [
        (
            "How do I restart the payments service?",
            "Restart the payment service with systemctl.",
            "The cafeteria serves lasagne on Fridays.",
        ),
        (
            "A kitten was sleeping on the rug.",
            "The cat sat on the mat.",
            "Quarterly tax filings are due in April.",
        ),
        (
            "Where are old invoices kept?",
            "Invoices are archived to the finance bucket every night.",
            "The mobile app crashes on startup.",
        ),
    ],
)
def test_related_texts_score_higher_than_unrelated_ones(
    embedder: StaticEmbedder, query: str, related: str, unrelated: str
) -> None:
    q, near, far = embedder.encode([query, related, unrelated])
    assert float(q @ near) > float(q @ far) + 0.1


def test_the_settings_build_it_in_a_vector_space_of_its_own() -> None:
    settings = Settings(embedder="minilm-static")
    assert isinstance(build_embedder(settings), StaticEmbedder)
    assert embedding_space(settings) == SPACE != embedding_space(Settings(embedder="minilm"))


def test_a_dimension_mismatch_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="384-dimensional vectors, embedding_dim is 256"):
        build_embedder(Settings(embedder="minilm-static", embedding_dim=256))


async def test_long_input_is_embedded_off_the_event_loop(embedder: StaticEmbedder) -> None:
    """Nothing truncates a static embedding, so a huge query or an ingest batch is tokenized in
    a worker thread (other calls keep being served); a short query stays on the loop."""
    threads: list[str] = []
    encode = embedder.encode

    def recording(texts):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return encode(texts)

    embedder.encode = recording  # type: ignore[method-assign]
    try:
        short = await embedder.embed(["a short query"])
        long = await embedder.embed(["the river bank flooded " * (INLINE_MAX_CHARS // 10)])
    finally:
        del embedder.encode
    loop_thread = threading.current_thread().name
    assert threads[0] == loop_thread
    assert threads[1] != loop_thread
    assert len(short[0]) == len(long[0]) == 384
