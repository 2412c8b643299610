"""The torch-free all-MiniLM-L6-v2 embedder against what sentence-transformers produces.

Reference values (no torch here to compute them):
- token ids and the first six dimensions of four sentences, as published in the test suite of an
  ONNX-based R port that checks itself against SentenceTransformers to 1e-6;
- the similarity matrix of the sentence-transformers quick-start example for this model
  (0.6660, 0.1046, 0.1411, printed to four decimals in its documentation).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from keel_memory.adapters.minilm import MiniLMEmbedder, find_model_dir, safetensors_file
from keel_memory.adapters.minilm.bert import gelu
from keel_memory.adapters.minilm.embedder import ModelNotFoundError

REFERENCE = {
    "This is an example sentence": (
        [101, 2023, 2003, 2019, 2742, 6251, 102],
        [0.06765693, 0.06349593, 0.04871314, 0.07930495, 0.03744806, 0.00265273],
    ),
    "Each sentence is converted.": (
        [101, 2169, 6251, 2003, 4991, 1012, 102],
        [0.07853645, 0.08856265, -0.00209270, -0.00717247, -0.01252624, 0.01881747],
    ),
    "": ([101, 102], [-0.11883835, 0.04829856, -0.00254805, -0.01101118, 0.05195070, 0.01029179]),
    "Café déjà vu — 東京": (
        [101, 7668, 2139, 3900, 24728, 1517, 1879, 1755, 102],
        [0.05083271, 0.00967685, 0.09635572, -0.00997369, -0.01987603, 0.01692343],
    ),
}


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder.load()


def test_tokens_and_vectors_match_sentence_transformers(embedder: MiniLMEmbedder) -> None:
    texts = list(REFERENCE)
    assert embedder.token_ids(texts) == [ids for ids, _ in REFERENCE.values()]
    vectors = embedder.encode(texts)
    expected = np.array([prefix for _, prefix in REFERENCE.values()])
    assert np.abs(vectors[:, :6] - expected).max() < 1e-5


def test_quick_start_similarities_match_the_published_matrix(embedder: MiniLMEmbedder) -> None:
    v = embedder.encode(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    similarities = v @ v.T
    assert np.round(similarities[0, 1], 4) == pytest.approx(0.6660)
    assert np.round(similarities[0, 2], 4) == pytest.approx(0.1046)
    assert np.round(similarities[1, 2], 4) == pytest.approx(0.1411)


async def test_vectors_have_384_unit_length_dimensions(embedder: MiniLMEmbedder) -> None:
    vectors = await embedder.embed(["a short one", "a much longer sentence " * 20])
    assert embedder.dim == 384
    assert [len(v) for v in vectors] == [384, 384]
    for vector in vectors:
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_a_paraphrase_scores_far_above_an_unrelated_sentence(embedder: MiniLMEmbedder) -> None:
    query, paraphrase, unrelated = embedder.encode(
        [
            "How do I restart the payment service?",
            "Steps to reboot the payments backend",
            "The cafeteria serves lasagne on Fridays",
        ]
    )
    assert float(query @ paraphrase) > 0.5
    assert float(query @ paraphrase) > float(query @ unrelated) + 0.4


def test_a_batch_gives_each_text_the_vector_it_gets_alone(embedder: MiniLMEmbedder) -> None:
    texts = ["short", "a medium length sentence about deployments", "x " * 300, "  padded  "]
    batch = embedder.encode(texts)
    for text, row in zip(texts, batch, strict=True):
        assert np.abs(embedder.encode([text])[0] - row).max() < 1e-5
    # Surrounding whitespace is stripped, as sentence-transformers does.
    assert np.abs(embedder.encode(["padded"])[0] - batch[3]).max() < 1e-6
    assert embedder.encode([]).shape == (0, 384)


def test_long_texts_are_truncated_to_256_tokens(embedder: MiniLMEmbedder) -> None:
    [ids] = embedder.token_ids(["word " * 1000])
    assert len(ids) == 256
    assert ids[0] == 101
    assert ids[-1] == 102


def test_gelu_is_the_erf_form() -> None:
    import math

    x = np.linspace(-6, 6, 1001, dtype=np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    assert np.abs(gelu(x.copy()) - exact).max() < 1e-6


def test_a_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="config.json"):
        find_model_dir(str(tmp_path))
    assert (find_model_dir() / "model.safetensors").is_file()


def write_safetensors(path: Path, header: dict[str, object], data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_safetensors_reader_reads_tensors_and_rejects_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    values = np.arange(6, dtype="<f4")
    write_safetensors(
        good,
        {
            "__metadata__": {"format": "pt"},
            "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        },
        values.tobytes(),
    )
    tensors = safetensors_file.load(good)
    assert list(tensors) == ["w"]
    assert tensors["w"].tolist() == [[0, 1, 2], [3, 4, 5]]

    short = tmp_path / "short.safetensors"
    write_safetensors(
        short, {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, b"\0" * 8
    )
    with pytest.raises(safetensors_file.SafetensorsError, match="offsets"):
        safetensors_file.load(short)
    odd = tmp_path / "odd.safetensors"
    write_safetensors(odd, {"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8)
    with pytest.raises(safetensors_file.SafetensorsError, match="dtype"):
        safetensors_file.load(odd)
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01")
    with pytest.raises(safetensors_file.SafetensorsError):
        safetensors_file.load(tmp_path / "tiny.safetensors")
