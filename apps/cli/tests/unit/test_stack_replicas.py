"""Further replicas of a service in a local stack: their own ports and process names, their
service's Kafka principal."""

from __future__ import annotations

from pathlib import Path

from keel_cli.stack import SERVICES, LocalStack, free_ports, with_free_ports, with_replicas


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


def test_callers_of_a_replicated_service_name_every_replica(tmp_path: Path) -> None:
    specs = with_replicas(with_free_ports(), {"llm-gateway": 2, "tool-gateway": 2})
    stack = LocalStack(run_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", specs=specs)

    env = stack.env_for(stack.spec("agent-loop"))

    llm = [s.grpc_port for s in stack.replicas("llm-gateway")]
    assert env["KEEL_AGENT_LOOP_LLM_TARGET"] == f"ipv4:127.0.0.1:{llm[0]},127.0.0.1:{llm[1]}"
    assert env["KEEL_AGENT_LOOP_TOOL_TARGET"].count("127.0.0.1:") == 2
    # A service running once keeps its plain address.
    assert env["KEEL_AGENT_LOOP_MEMORY_TARGET"] == stack.target("memory")


def test_each_memory_replica_has_its_own_milvus_lite_file_unless_a_server_is_named(
    tmp_path: Path,
) -> None:
    specs = with_replicas(with_free_ports(), {"memory": 2})
    lite = LocalStack(run_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", specs=specs)
    server = LocalStack(
        run_dir=tmp_path,
        kafka_bootstrap="127.0.0.1:1",
        specs=specs,
        memory_uri="http://127.0.0.1:19530",
    )

    files = {lite.env_for(s)["KEEL_MEMORY_MILVUS_URI"] for s in lite.replicas("memory")}
    shared = {server.env_for(s)["KEEL_MEMORY_MILVUS_URI"] for s in server.replicas("memory")}

    assert files == {
        str(tmp_path / "memory" / "milvus.db"),
        str(tmp_path / "memory" / "milvus-2.db"),
    }
    assert shared == {"http://127.0.0.1:19530"}


def test_free_ports_are_below_the_range_outgoing_connections_take_theirs_from() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])

    ports = free_ports(20)

    assert len(set(ports)) == 20
    assert all(port < low for port in ports)
