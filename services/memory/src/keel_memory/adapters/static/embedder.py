"""``minilm-static``: a text's vector is the normalised sum of its tokens' distilled rows.

The tokenizer is MiniLM's own (``tokenizer.json``, BERT uncased WordPiece), without ``[CLS]``/
``[SEP]`` (they carry no text) and without truncation (a sum of rows has no length limit). The
rows already carry their token's weight (``distill.py``), so the normalised sum is the normalised
weighted mean.

Embedding is a lookup and a sum, tens of microseconds per short text, so ``embed`` runs short
input on the event loop: handing it to a worker thread would cost more than the work, and a
burst of queries never queues behind a model. Long input (an ingest batch, a 64 KB entry, a
hostile multi-megabyte query: nothing truncates here) is tokenized in a worker thread instead,
so it never stalls every other call of the service. The service does not wrap it in the
``BatchingEmbedder`` (``app.py``): there is no per-call cost to share.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from itertools import chain
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from keel_memory.adapters.static import distill
from keel_memory.adapters.static.table_cache import Table, load_table
from keel_memory.domain.models import Vector

log = logging.getLogger(__name__)

# What a collection written with this embedder records (``milvus_store``): the recipe's version
# is part of it, since a new recipe is a new vector space.
SPACE = f"minilm-static-v{distill.VERSION}"
# Input longer than this (characters in all) is embedded in a worker thread: about a
# millisecond of tokenizing, more than a thread hand-off costs.
INLINE_MAX_CHARS = 8_192


class StaticEmbedder:
    def __init__(self, table: Table, tokenizer: Tokenizer) -> None:
        if table.shape[0] != tokenizer.get_vocab_size():
            raise ValueError(
                f"table has {table.shape[0]} rows, the vocabulary {tokenizer.get_vocab_size()}"
            )
        self._table = table
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    @classmethod
    def load(cls, model_dir: Path, cache_dir: Path | None = None) -> StaticEmbedder:
        """The table from the cache (distilled there first if missing or unsound)."""
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        hidden = int(distill.hidden_size(model_dir))
        table, path = load_table(model_dir, (tokenizer.get_vocab_size(), hidden), cache_dir)
        log.info("static embedder: table %s", path)
        return cls(table, tokenizer)

    @property
    def dim(self) -> int:
        return int(self._table.shape[1])

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if sum(len(text) for text in texts) > INLINE_MAX_CHARS:
            rows = await asyncio.to_thread(self.encode, texts)
        else:
            rows = self.encode(texts)
        return [row.tolist() for row in rows]

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors, one row per text. A text without tokens (empty, or only unknown
        characters) gets a fixed unit vector, so cosine similarity stays defined."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = [
            encoding.ids
            for encoding in self._tokenizer.encode_batch(
                [text.strip() for text in texts], add_special_tokens=False
            )
        ]
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        present = lengths > 0
        if present.any():
            flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))[present]
            out[present] = np.add.reduceat(self._table[flat], starts, axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        empty = norms[:, 0] < 1e-12
        out[~empty] /= norms[~empty]
        out[empty, 0] = 1.0
        return out
