"""Embeddings from any OpenAI-compatible ``POST {base_url}/embeddings`` endpoint (OpenAI, vLLM,
llama.cpp server, Ollama, text-embeddings-inference), for deployments that serve a model
elsewhere instead of running MiniLM in the memory process.

Vectors are L2-normalised here even though OpenAI already returns unit vectors: other servers do
not always, and the store ranks by cosine on the assumption that every vector has length 1.
The API key goes into the Authorization header only; errors never quote it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from keel_contracts.errors import Unavailable
from keel_memory.domain.models import Vector


class OpenAIEmbedder:
    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        model: str,
        dim: int,
        *,
        timeout_s: float = 10.0,
        batch_size: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json"}
        if api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._secret = api_key.get_secret_value()
        self._model = model
        self._dim = dim
        self._batch_size = max(1, batch_size)
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    @property
    def dim(self) -> int:
        return self._dim

    async def aclose(self) -> None:
        await self._client.aclose()

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        vectors: list[Vector] = []
        for start in range(0, len(texts), self._batch_size):
            vectors += await self._request(list(texts[start : start + self._batch_size]))
        return vectors

    async def _request(self, texts: list[str]) -> list[Vector]:
        try:
            response = await self._client.post(
                "embeddings", json={"model": self._model, "input": texts}
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"embeddings provider unreachable: {type(exc).__name__}") from None
        if response.status_code >= 400:
            body = response.text[:300]
            if self._secret:
                body = body.replace(self._secret, "[redacted]")
            raise Unavailable(f"embeddings provider answered {response.status_code}: {body}")
        try:
            return self._parse(response.json(), len(texts))
        except (ValueError, KeyError, TypeError) as exc:
            raise Unavailable(f"embeddings provider sent a malformed response: {exc}") from None

    def _parse(self, payload: Any, expected: int) -> list[Vector]:
        """``data`` items in ``index`` order (the API allows any order), each of ``dim`` floats."""
        items = sorted(payload["data"], key=lambda item: int(item["index"]))
        if len(items) != expected:
            raise ValueError(f"{len(items)} embeddings for {expected} inputs")
        vectors = [[float(v) for v in item["embedding"]] for item in items]
        for vector in vectors:
            if len(vector) != self._dim:
                raise ValueError(f"a {len(vector)}-dimensional embedding, expected {self._dim}")
        return [_unit(vector) for vector in vectors]


def _unit(vector: Vector) -> Vector:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm > 0 else vector
