"""The OpenAI-compatible embeddings provider against a fake endpoint (httpx MockTransport)."""

from __future__ import annotations

import json
import math

import httpx
import pytest
from pydantic import SecretStr

from keel_contracts.errors import Unavailable
from keel_memory.adapters.openai_embedder import OpenAIEmbedder


def provider(handler: httpx.MockTransport, *, batch_size: int = 64) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        "http://embed.local/v1/",
        SecretStr("sk-secret"),
        "text-embedding-3-small",
        3,
        batch_size=batch_size,
        transport=handler,
    )


async def test_batches_requests_orders_by_index_and_normalises() -> None:
    seen: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url == "http://embed.local/v1/embeddings"
        assert request.headers["Authorization"] == "Bearer sk-secret"
        body = json.loads(request.content)
        seen.append(body)
        data = [
            {"index": i, "embedding": [float(len(text)), 0.0, 0.0]}
            for i, text in enumerate(body["input"])
        ]
        return httpx.Response(200, json={"data": list(reversed(data))})

    embedder = provider(httpx.MockTransport(answer), batch_size=2)
    vectors = await embedder.embed(["a", "bb", "ccc"])
    await embedder.aclose()
    assert [body["input"] for body in seen] == [["a", "bb"], ["ccc"]]
    assert {body["model"] for body in seen} == {"text-embedding-3-small"}
    assert vectors == [[1.0, 0.0, 0.0]] * 3
    assert all(math.isclose(sum(v * v for v in vec), 1.0) for vec in vectors)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(401, text="bad key sk-secret"), "401"),
        (httpx.Response(200, json={"data": [{"index": 0, "embedding": [1.0, 2.0]}]}), "2-dim"),
        (httpx.Response(200, json={"data": []}), "0 embeddings"),
        (httpx.Response(200, text="not json"), "malformed"),
    ],
)
async def test_bad_answers_are_unavailable_without_the_key(
    response: httpx.Response, message: str
) -> None:
    embedder = provider(httpx.MockTransport(lambda _request: response))
    with pytest.raises(Unavailable, match=message) as caught:
        await embedder.embed(["x"])
    assert "sk-secret" not in str(caught.value)
    await embedder.aclose()


async def test_an_unreachable_endpoint_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    embedder = provider(httpx.MockTransport(refuse))
    with pytest.raises(Unavailable, match="unreachable"):
        await embedder.embed(["x"])
    await embedder.aclose()
