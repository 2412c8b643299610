"""Attacks on the bus, on the real (secured) broker: each principal tries what the ACL table
(keel_contracts.acl) does not allow it, and clients without credentials try to get in.

Run against a plaintext broker (``KEEL_KAFKA_SECURITY=plaintext``, what the launcher always
started before) every attack here succeeds and every test fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from aiokafka.structs import TopicPartition

from keel_cli.broker import kafka_settings
from keel_contracts.acl import OPERATOR, SERVICES
from keel_contracts.topics import APPROVAL_DECISIONS, AUDIT, TOOL_RESULTS
from keel_core.bus.connect import client_options
from keel_core.settings import KafkaSettings

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(
        bool(os.environ.get("KEEL_KAFKA_BOOTSTRAP")),
        reason="an external cluster has its own ACLs, not the launcher's",
    ),
]

_TOPIC_AUTHORIZATION_FAILED = 29


def as_principal(kafka: KafkaSettings, principal: str) -> KafkaSettings:
    """``principal``'s settings on the session broker (plaintext if it is not secured)."""
    credentials = os.environ.get("KEEL_KAFKA_CREDENTIALS_DIR")
    return kafka_settings(
        kafka.bootstrap, Path(credentials) if credentials else None, principal, connect_timeout_s=10
    )


@asynccontextmanager
async def producer(settings: KafkaSettings, **options: object) -> AsyncIterator[AIOKafkaProducer]:
    arguments: dict[str, object] = {
        "enable_idempotence": True,
        "request_timeout_ms": 10_000,
        **client_options(settings),
        **options,
    }
    client = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, **arguments)
    try:
        await client.start()
        yield client
    finally:
        await client.stop()


@asynccontextmanager
async def admin_client(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, **client_options(settings))
    await client.start()
    try:
        yield client
    finally:
        await client.close()


FORBIDDEN_WRITES = [
    (principal, topic)
    for topic, owner in ((APPROVAL_DECISIONS, "approval"), (TOOL_RESULTS, "tool-gateway"))
    for principal in (*SERVICES, OPERATOR)
    if principal != owner
]


@pytest.mark.parametrize(("principal", "topic"), FORBIDDEN_WRITES)
async def test_a_principal_cannot_write_a_topic_it_does_not_own(
    kafka: KafkaSettings, principal: str, topic: str
) -> None:
    """A forged decision or a pre-recorded tool result from any other principal is refused."""
    async with producer(as_principal(kafka, principal)) as client:
        with pytest.raises(TopicAuthorizationFailedError):
            await client.send_and_wait(topic, b"forged", key=uuid.uuid4().bytes)


@pytest.mark.parametrize(
    ("principal", "topic"), [("approval", APPROVAL_DECISIONS), ("tool-gateway", TOOL_RESULTS)]
)
async def test_the_owner_writes_its_topic(kafka: KafkaSettings, principal: str, topic: str) -> None:
    """The refusals above are the ACLs, not broken credentials: the owner's write goes through."""
    async with producer(as_principal(kafka, principal)) as client:
        sent = await client.send_and_wait(topic, None, key=f"acl-test-{uuid.uuid4()}".encode())
    assert sent.offset >= 0


@pytest.mark.parametrize("principal", [*SERVICES, OPERATOR])
async def test_no_service_or_operator_can_cut_the_audit_trail(
    kafka: KafkaSettings, principal: str
) -> None:
    """Deleting audit records, deleting the topic, or shortening its retention is refused for
    every principal but the admin; the topic and its policy are still there afterwards. (No
    record is written here: the session's audit chains must stay verifiable.)"""
    async with admin_client(as_principal(kafka, principal)) as attacker:
        with pytest.raises(KafkaError):
            await attacker.delete_records({TopicPartition(AUDIT, 0): RecordsToDelete(-1)})
        deleted = await attacker.delete_topics([AUDIT])
        assert [code for _, code, *_ in deleted.topic_error_codes] == [_TOPIC_AUTHORIZATION_FAILED]
        altered = await attacker.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, AUDIT, {"retention.ms": "1"})]
        )
        codes = [code for response in altered for code, *_ in response.resources]
        assert codes == [_TOPIC_AUTHORIZATION_FAILED]
    async with admin_client(as_principal(kafka, "admin")) as admin:
        assert AUDIT in await admin.list_topics()
        [described] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, AUDIT, None)]
        )
        configs = {c[0]: c[1] for resource in described.resources for c in resource[4]}
        assert configs["retention.ms"] == "-1"


@pytest.mark.parametrize(
    "how",
    ["plaintext", "tls without sasl", "wrong password", "unknown user", "untrusted broker"],
)
async def test_a_client_without_valid_credentials_cannot_produce(
    kafka: KafkaSettings, how: str, tmp_path: Path
) -> None:
    """Nothing reaches the broker's topics from a client that does not prove who it is."""
    operator = as_principal(kafka, OPERATOR)
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password")
    settings = {
        "plaintext": operator.model_copy(update={"security_protocol": "PLAINTEXT"}),
        "tls without sasl": operator.model_copy(update={"security_protocol": "SSL"}),
        "wrong password": operator.model_copy(update={"password_file": wrong}),
        "unknown user": operator.model_copy(update={"username": "mallory"}),
        "untrusted broker": operator.model_copy(update={"ssl_ca_file": None}),
    }[how]
    with pytest.raises((KafkaError, OSError, TimeoutError)):
        async with asyncio.timeout(20), producer(settings, request_timeout_ms=3_000) as client:
            await client.send_and_wait(AUDIT, b"{}")
