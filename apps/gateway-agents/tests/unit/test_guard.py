"""The HTTP edge without a stack: who is turned away before anything reaches the agent loop
(the agent loop target here is a closed port, so a call that got through would fail
differently), and the A2A card that tells callers how to authenticate."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from keel_agents_server import AgentsServerSettings, build
from keel_agents_server.auth import host_allowed

from keel_contracts.errors import ConfigError
from keel_core import trust
from keel_core.grpc.tokens import mint_token
from keel_core.trust import TrustSettings


def _settings() -> AgentsServerSettings:
    return AgentsServerSettings(
        agent_loop_target="127.0.0.1:9",
        profiles=["default", "researcher"],
        trust=TrustSettings(dir=Path(os.environ["KEEL_TRUST_DIR"])),
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    parts = build(_settings())
    transport = httpx.ASGITransport(app=parts.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8790") as http:
        yield http
    await parts.channel.close()


def _token(**claims: object) -> str:
    material = trust.TrustMaterial(Path(os.environ["KEEL_TRUST_DIR"]))
    fields: dict[str, object] = {"sub": "ann", "tenant": "acme", "roles": ["submitter"]}
    fields.update(claims)
    return mint_token(material.token_signing_key(), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/mcp", "/a2a"])
async def test_no_token_is_401_on_mcp_and_a2a(client: httpx.AsyncClient, path: str) -> None:
    reply = await client.post(path, json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get"})
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        _token(now=time.time() - 7200),  # expired an hour ago
        mint_token(Ed25519PrivateKey.generate(), sub="x", tenant="acme", roles=["submitter"]),
    ],
    ids=["garbage", "expired", "foreign-key"],
)
async def test_a_token_the_verifier_refuses_is_401(client: httpx.AsyncClient, token: str) -> None:
    reply = await client.post(
        "/a2a",
        json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "s"}},
        headers={"authorization": f"Bearer {token}"},
    )
    assert reply.status_code == 401
    assert "bearer token refused" in reply.json()["error"]


async def test_a_foreign_host_is_400_even_with_a_good_token(client: httpx.AsyncClient) -> None:
    reply = await client.get(
        "/.well-known/agent-card.json",
        headers={"host": "attacker.example", "authorization": f"Bearer {_token()}"},
    )
    assert reply.status_code == 400


async def test_the_card_is_public_and_names_skills_and_bearer(client: httpx.AsyncClient) -> None:
    card = (await client.get("/.well-known/agent-card.json")).json()
    assert [s["id"] for s in card["skills"]] == ["default", "researcher", "run_plan"]
    assert card["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert card["security"] == [{"bearer": []}]
    assert card["url"] == "http://127.0.0.1:8790/a2a"


async def test_json_rpc_errors_of_the_spec(client: httpx.AsyncClient) -> None:
    auth = {"authorization": f"Bearer {_token()}"}

    async def call(body: object) -> dict[str, object]:
        reply = await client.post("/a2a", json=body, headers=auth)
        assert reply.status_code == 200
        error = reply.json()["error"]
        assert isinstance(error, dict)
        return error

    assert (await call({"jsonrpc": "2.0", "id": 1, "method": "tasks/nope"}))["code"] == -32601
    assert (await call({"jsonrpc": "2.0", "id": 2, "method": "tasks/get"}))["code"] == -32602
    unknown_skill = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "message/send",
        "params": {
            "message": {"role": "user", "parts": [{"kind": "text", "text": "hi"}]},
            "metadata": {"skill": "hacker"},
        },
    }
    assert (await call(unknown_skill))["code"] == -32602
    assert (await call({"id": 4, "method": "tasks/get"}))["code"] == -32600


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("127.0.0.1:8790", True), ("LOCALHOST", True), ("[::1]:80", False), ("evil.test", False)],
)
def test_host_allow_list_ignores_the_port(host: str, allowed: bool) -> None:
    assert host_allowed(host, ["127.0.0.1", "localhost"]) is allowed


def test_without_trust_material_the_server_refuses_to_build() -> None:
    """No keys, no way to check a token: it must not serve at all (not serve unchecked)."""
    settings = AgentsServerSettings(trust=TrustSettings(dir=None, insecure_dev=True))
    with pytest.raises(ConfigError, match="needs KEEL_TRUST_DIR"):
        build(settings)


def test_a_trust_directory_without_its_certificate_says_how_to_add_it(tmp_path: Path) -> None:
    """A directory made before the server had its own identity: it does not fall back to
    another identity's certificate, it says which command adds its own."""
    directory = trust.generate(tmp_path / "old", tls_only=())
    settings = AgentsServerSettings(trust=TrustSettings(dir=directory))
    with pytest.raises(ConfigError, match=r"agents-server\.pem.*keel dev trust"):
        build(settings)
