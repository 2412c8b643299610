"""Every method of every service's gRPC contract, fed generated requests (any field set or not,
random values, huge strings, unknown enum numbers, empty ids, garbage in ``*_json`` fields)
over a real loopback server of the service as ``build`` wires it: each call is answered OK or
with a deliberate status (``grpc_harness.DELIBERATE``), never INTERNAL, UNKNOWN or a hang, and
afterwards the service still answers a well-formed request of every method with OK."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from keel_core.grpc import insecure_channel
from tests.fuzz.grpc_harness import DELIBERATE, Answer, Method, call, describe, methods_of
from tests.fuzz.grpc_services import CONTRACTS
from tests.fuzz.harness import EXAMPLES, FUZZ, REQUESTS_PER_EXAMPLE
from tests.fuzz.strategies import requests

pytestmark = [pytest.mark.fuzz, pytest.mark.filterwarnings("ignore:Generating overly large repr")]

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto" / "keel"


def test_every_contract_in_proto_is_fuzzed() -> None:
    """A new service contract under proto/keel/*/v1 cannot go unfuzzed."""
    declared = {
        (f"keel.{path.parent.parent.name}.v1", line.split()[1])
        for path in PROTO_ROOT.glob("*/v1/*.proto")
        for line in path.read_text().splitlines()
        if line.startswith("service ")
    }
    fuzzed = {(c.pb2.DESCRIPTOR.package, c.service) for c in CONTRACTS.values()}
    assert declared == fuzzed


def _params() -> list[object]:
    marks = {name: [pytest.mark.milvus] if c.milvus else [] for name, c in CONTRACTS.items()}
    return [pytest.param(name, marks=marks[name], id=name) for name in CONTRACTS]


@pytest.mark.parametrize("name", _params())
def test_every_method_answers_generated_requests_on_purpose(name: str, tmp_path: Path) -> None:
    contract = CONTRACTS[name]
    methods = methods_of(contract.pb2, contract.service)
    # One request of every method per round: every method gets the same share of the run.
    rounds = st.lists(
        st.tuples(*(requests(m.request) for m in methods)),
        min_size=REQUESTS_PER_EXAMPLE,
        max_size=REQUESTS_PER_EXAMPLE,
    )
    seen: Counter[tuple[str, str]] = Counter()
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        served = runner.run(stack.enter_async_context(contract.start(tmp_path)))
        channel = runner.run(stack.enter_async_context(insecure_channel(served.target)))
        try:

            @FUZZ
            @given(rounds)
            def fuzz(drawn: list[tuple[Message, ...]]) -> None:
                failures = runner.run(_send(channel, methods, drawn, seen))
                assert not failures, "\n".join(failures)

            fuzz()
            by_name = {m.name: m for m in methods}
            for method_name, request in served.canaries:
                answer = runner.run(call(channel, by_name[method_name], request))
                assert answer.code == grpc.StatusCode.OK, describe(
                    by_name[method_name], request, answer
                )
        finally:
            runner.run(stack.aclose())
    # Non-vacuous: every method was called in every example and answered every time.
    assert {m for m, _ in seen} == {m.name for m in methods}
    for method in methods:
        calls = sum(n for (m, _), n in seen.items() if m == method.name)
        assert calls >= EXAMPLES * REQUESTS_PER_EXAMPLE
    assert {m.name for m in methods} == {m for m, _ in served.canaries}


async def _send(
    channel: grpc.aio.Channel,
    methods: list[Method],
    drawn: list[tuple[Message, ...]],
    seen: Counter[tuple[str, str]],
) -> list[str]:
    """Sends each round's requests one after another; the failures, described."""
    failures = []
    for round_ in drawn:
        for method, request in zip(methods, round_, strict=True):
            answer: Answer = await call(channel, method, request)
            seen[method.name, answer.code.name] += 1
            if answer.code not in DELIBERATE:
                failures.append(describe(method, request, answer))
    return failures
