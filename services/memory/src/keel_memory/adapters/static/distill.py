"""Distil all-MiniLM-L6-v2 into a static table: one vector per WordPiece token.

The idea (model2vec's, written here from scratch): a sentence embedding is mostly the sum of what
its words mean, so run the model once per token of its vocabulary, keep the vectors, and embed a
text later as the weighted mean of its tokens' rows — a lookup instead of six transformer layers.
What is lost is context (word order, "not", a word's sense from its neighbours); what is won is
speed: a query costs microseconds instead of milliseconds, and a burst of them no longer queues
for the CPU (docs/adr/0018-static-embeddings.md has the measurements of both).

How each row is made, chosen on ``bench/embedder_quality.py``'s sets (the variants tried and their
numbers are in docs/adr/0018-static-embeddings.md):

1. every token id is encoded alone, as the model would embed a one-token text:
   ``[CLS] token [SEP]`` through our NumPy ``BertEncoder``, and the token's own output position
   is kept (it retrieved better than the mean over all three positions, whose ``[CLS]``/``[SEP]``
   rows are nearly the same for every token);
2. the rows are centred (the mean row of the real vocabulary is subtracted): every BERT output
   shares a large common direction, which otherwise dominates a mean of a few tokens and makes
   unrelated texts look alike;
3. each row is scaled by a weight from its rank in the vocabulary. BERT's WordPiece vocabulary is
   ordered roughly by frequency after its special and single-character entries, so the rank
   stands in for a corpus frequency (no corpus is needed or shipped): with Zipf's law a token of
   rank r has probability ~1/r, and the SIF weight ``a / (a + p)`` turns that into a weight that
   keeps "the", "of", punctuation small and rare content words large. Special tokens (``[PAD]``,
   ``[unused…]``, ``[CLS]``…) get weight 0: they never stand for text.

Weights are folded into the rows, so the embedder only sums rows and normalises (the normalised
weighted mean is the normalised weighted sum). The vectors stay 384-dimensional, so a collection's
schema does not change with the embedder (only its vector space does: see ``milvus_store``).

One pass over the 30,522 tokens is ~30 forward passes of 1,024 three-token rows: about 40 s on
two cores. ``VERSION`` is part of the cache key: change it whenever the recipe changes, so old
tables (and collections written with them) are never mistaken for the new one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from keel_memory.adapters.minilm import safetensors_file
from keel_memory.adapters.minilm.bert import BertConfig, BertEncoder

VERSION = 1
# Rows per forward pass: 1,024 rows of 3 tokens keep each pass a few megabytes.
_ROWS_PER_PASS = 1024
# SIF's smoothing constant: 1e-5 retrieved best of 1e-3 … 1e-7 (docs/adr/0018).
_SIF_A = 1e-5


def special_ids(tokenizer: Tokenizer) -> npt.NDArray[np.bool_]:
    """Which ids are not text: ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]`` and the
    ``[unusedN]`` slots (bracketed entries of the vocabulary)."""
    vocab = tokenizer.get_vocab()
    special = np.zeros(tokenizer.get_vocab_size(), dtype=np.bool_)
    for token, index in vocab.items():
        if token.startswith("[") and token.endswith("]") and len(token) > 2:
            special[index] = True
    return special


def token_weights(special: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """SIF weights ``a / (a + p(rank))`` with Zipf ``p(rank) ∝ 1 / rank`` over the non-special
    ids in vocabulary order; 0 for special ids."""
    count = int((~special).sum())
    ranks = np.arange(1, count + 1, dtype=np.float64)
    p = (1.0 / ranks) / (1.0 / ranks).sum()
    weights = np.zeros(special.shape[0], dtype=np.float32)
    weights[~special] = (_SIF_A / (_SIF_A + p)).astype(np.float32)
    return weights


def token_vectors(
    encoder: BertEncoder, cls_id: int, sep_id: int, vocab_size: int
) -> npt.NDArray[np.float32]:
    """The model's output at the token's position of ``[CLS] id [SEP]``, for every id."""
    out = np.zeros((vocab_size, encoder.config.hidden_size), dtype=np.float32)
    for begin in range(0, vocab_size, _ROWS_PER_PASS):
        ids = np.arange(begin, min(vocab_size, begin + _ROWS_PER_PASS), dtype=np.int64)
        rows = np.stack([np.full_like(ids, cls_id), ids, np.full_like(ids, sep_id)], axis=1)
        out[begin : begin + len(ids)] = encoder.forward(rows, np.ones_like(rows))[:, 1]
    return out


def hidden_size(model_dir: Path) -> int:
    """The model's vector size, from its config, without loading the weights."""
    return BertConfig.from_json(json.loads((model_dir / "config.json").read_text())).hidden_size


def distil(model_dir: Path) -> npt.NDArray[np.float32]:
    """The (vocabulary, hidden) table for the model in ``model_dir``: centred, weighted rows."""
    config = BertConfig.from_json(json.loads((model_dir / "config.json").read_text()))
    encoder = BertEncoder(config, safetensors_file.load(model_dir / "model.safetensors"))
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ValueError(f"{model_dir / 'tokenizer.json'} has no [CLS]/[SEP] token")
    vectors = token_vectors(encoder, cls_id, sep_id, tokenizer.get_vocab_size())
    special = special_ids(tokenizer)
    vectors -= vectors[~special].mean(axis=0)
    vectors *= token_weights(special)[:, None]
    return vectors
