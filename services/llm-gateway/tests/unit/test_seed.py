"""The sampling seed: from the typed client over gRPC to the OpenAI-compatible upstream's
``seed`` field and the local model's RNG, and into the response cache key (two seeds, two
entries)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_clients import CompletionOptions, LLMClient
from keel_contracts.chat import ChatMessage as WireMessage
from keel_contracts.chat import RequestContext
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import in_memory_audit
from keel_llm_gateway.adapters.local_model_engine import UNSEEDED, LlamaEngine
from keel_llm_gateway.adapters.openai_compat import OpenAICompatProvider, request_body
from keel_llm_gateway.domain.cache import ResponseCache, cache_key
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest
from keel_llm_gateway.handlers.grpc_servicer import LLMGatewayServicer
from keel_llm_gateway.handlers.mapping import request_from_proto
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.testing import MockOpenAIUpstream
from keel_llm_gateway.usecases.completions import Completions
from keel_llm_gateway.usecases.gateway import Gateway

ASK = CompletionRequest(messages=(ChatMessage(role="user", content="Pick a number"),))


def test_the_seed_is_part_of_the_cache_key_and_unset_differs_from_zero() -> None:
    keys = {cache_key(ASK.model_copy(update={"seed": seed}), "m") for seed in (None, 0, 7, 8)}
    assert len(keys) == 4
    assert cache_key(ASK.model_copy(update={"seed": 7}), "m") == cache_key(
        ASK.model_copy(update={"seed": 7}), "m"
    )


def test_the_proto_seed_maps_only_when_set() -> None:
    assert request_from_proto(llm_pb2.CompleteRequest()).seed is None
    assert request_from_proto(llm_pb2.CompleteRequest(seed=0)).seed == 0
    assert request_from_proto(llm_pb2.CompleteRequest(seed=42)).seed == 42


def test_the_openai_body_carries_the_seed_only_when_set() -> None:
    assert "seed" not in request_body(ASK, "gpt")
    assert request_body(ASK.model_copy(update={"seed": 5}), "gpt")["seed"] == 5


@pytest.fixture
async def upstream() -> AsyncIterator[MockOpenAIUpstream]:
    mock = MockOpenAIUpstream(reply_text="four")
    await mock.start()
    try:
        yield mock
    finally:
        await mock.stop()


async def test_the_clients_seed_reaches_the_upstream_and_two_seeds_are_two_cache_entries(
    upstream: MockOpenAIUpstream,
) -> None:
    registry = CollectorRegistry()
    metrics = LLMMetrics(registry)
    audit, _ = in_memory_audit("llm-gateway")
    audit.start()
    provider = OpenAICompatProvider(upstream.base_url, SecretStr("sk-test-key"), "gpt", 2.0)
    cache = ResponseCache(max_entries=8, ttl_s=60)
    gateway = Gateway.single(provider, {}, cache=cache, observer=metrics)
    servicer = LLMGatewayServicer(Completions(gateway, audit, metrics))
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(servicer, llm_pb2_grpc.add_LLMGatewayServicer_to_server, "keel.llm.v1.LLMGateway")],
        registry,
    )
    await server.start()
    ctx = RequestContext(session_id="s", agent_id="a", tenant="t")
    ask = [WireMessage(role="user", content="Pick a number")]
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
            client = LLMClient(channel)

            async def draw(seed: int) -> bool:
                options = CompletionOptions(temperature=0.8, cache=True, seed=seed)
                return (await client.complete(ctx, ask, options=options)).cached

            cached = [await draw(1), await draw(2), await draw(1)]
            unseeded = await client.complete(ctx, ask)
    finally:
        await server.stop(0)
        await provider.aclose()
        await audit.close()
    assert cached == [False, False, True]
    assert not unseeded.cached
    bodies: list[dict[str, Any]] = [body for _, body in upstream.seen]
    assert [b.get("seed") for b in bodies] == [1, 2, None]
    assert bodies[0]["temperature"] == 0.8
    assert len(cache) == 3


class _Llama:
    """Just enough of llama_cpp.Llama to see which seed each generation's sampler gets."""

    def __init__(self) -> None:
        self.seed_at_generate: list[int] = []
        self._seed = 0

    def n_ctx(self) -> int:
        return 512

    def token_eos(self) -> int:
        return 0

    def tokenize(self, text: bytes, add_bos: bool, special: bool) -> list[int]:
        return [1, 2]

    def detokenize(self, tokens: list[int]) -> bytes:
        return b"x"

    def set_seed(self, seed: int) -> None:
        self._seed = seed

    def generate(self, tokens: list[int], temp: float, top_k: int) -> Any:
        self.seed_at_generate.append(self._seed)
        yield 5
        yield 0


def test_an_unseeded_generation_gets_the_load_time_seed_not_the_last_one() -> None:
    llama = _Llama()
    engine = LlamaEngine(llama)

    def run(seed: int | None) -> None:
        engine.generate(
            "p", max_tokens=4, temperature=0.7, on_text=None, cancel=threading.Event(), seed=seed
        )

    run(11)
    run(None)
    run(2**40 + 3)
    assert llama.seed_at_generate == [11, UNSEEDED, 3]
    assert UNSEEDED == 0  # deterministic: what the model was always loaded with
