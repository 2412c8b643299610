"""A deterministic, offline embedder by feature hashing.

This is the stand-in until real sentence embeddings (all-MiniLM-L6-v2, 384 dimensions) land:
it needs no model download and gives the same vector for the same text in every process, so
ids, tests and stored vectors stay stable. It only knows shared words, not meaning: texts that
share words score higher than texts that do not, and synonyms score as unrelated.

Features are lower-cased word unigrams and bigrams; each is hashed with blake2b (stable across
processes, unlike ``hash()``) to a dimension and a sign, the signed counts are summed and the
vector is L2-normalised so cosine similarity is a dot product.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

from keel_memory.domain.models import Vector

_WORD = re.compile(r"\w+", re.UNICODE)


def features(text: str) -> list[str]:
    """Unigrams and bigrams of the lower-cased words; a text without word characters is one
    feature of its own, so no non-empty text maps to the zero vector."""
    words = _WORD.findall(text.lower())
    if not words:
        stripped = text.strip()
        return [stripped] if stripped else []
    bigrams = [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    return words + bigrams


class HashingEmbedder:
    def __init__(self, dim: int = 384) -> None:
        if dim < 8:
            raise ValueError("dim must be at least 8")
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        return [self.vector(text) for text in texts]

    def vector(self, text: str) -> Vector:
        values = [0.0] * self._dim
        for feature in features(text):
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self._dim
            values[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in values))
        if norm == 0.0:
            # Empty text, or features whose signs cancelled out: a fixed unit vector keeps cosine
            # similarity defined (Milvus rejects nothing, but 0/0 is not a score).
            values[0] = 1.0
            return values
        return [v / norm for v in values]
