"""Further replicas of a service in a local stack: their own ports and process names, their
service's Kafka principal."""

from __future__ import annotations

from pathlib import Path

from keel_cli.stack import SERVICES, LocalStack, with_free_ports, with_replicas


def test_a_second_replica_has_its_own_ports_and_instance_name() -> None:
    specs = with_replicas(with_free_ports(), {"agent-loop": 2, "approval": 3})
    stack = LocalStack(run_dir=Path("/nonexistent"), kafka_bootstrap="127.0.0.1:1", specs=specs)

    assert [s.instance for s in stack.replicas("approval")] == [
        "approval",
        "approval-2",
        "approval-3",
    ]
    assert len(specs) == len(SERVICES) + 3
    ports = [p for s in specs for p in (s.grpc_port, s.metrics_port, s.web_port) if p]
    assert len(ports) == len(set(ports))
    assert stack.target("agent-loop-2") != stack.target("agent-loop")
    assert stack.spec("approval-3").web_port


def test_every_replica_connects_to_kafka_as_its_services_principal(tmp_path: Path) -> None:
    (tmp_path / "agent-loop.password").write_text("secret")
    (tmp_path / "ca.pem").write_text("")
    specs = with_replicas(with_free_ports(), {"agent-loop": 2})
    stack = LocalStack(
        run_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", specs=specs, kafka_credentials=tmp_path
    )

    env = stack.env_for(stack.spec("agent-loop-2"))

    assert env["KEEL_KAFKA_USERNAME"] == "agent-loop"
    assert env["KEEL_AGENT_LOOP_GRPC_PORT"] == str(stack.spec("agent-loop-2").grpc_port)
