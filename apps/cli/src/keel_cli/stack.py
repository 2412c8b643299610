"""The six services as local processes: started in dependency order, health-checked over gRPC,
stopped with SIGTERM. Used by ``keel dev up`` (``make run``) and by the integration tests."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from keel_cli.broker import client_env
from keel_clients import CallOptions, ClientCredentials, HealthClient, open_channel
from keel_contracts.errors import KeelError
from keel_core import trust
from keel_core.grpc.tokens import ROLES, mint_token


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    env_prefix: str
    grpc_port: int
    metrics_port: int
    # The approval service's web inbox; 0: the service serves none.
    web_port: int = 0
    # Which replica of its service this is: the first is named after the service, a later one
    # ``<service>-<replica>`` (its process, log and ``kill`` name). Every replica connects to
    # Kafka as its service's principal and serves the same trust identity.
    replica: int = 1

    @property
    def instance(self) -> str:
        return self.name if self.replica == 1 else f"{self.name}-{self.replica}"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("policy", "keel_policy", "KEEL_POLICY_", 50054, 9104),
    ServiceSpec("memory", "keel_memory", "KEEL_MEMORY_", 50055, 9105),
    ServiceSpec("llm-gateway", "keel_llm_gateway", "KEEL_LLM_GATEWAY_", 50052, 9102),
    ServiceSpec("tool-gateway", "keel_tool_gateway", "KEEL_TOOL_GATEWAY_", 50053, 9103),
    ServiceSpec("approval", "keel_approval", "KEEL_APPROVAL_", 50056, 9106, 8086),
    ServiceSpec("agent-loop", "keel_agent_loop", "KEEL_AGENT_LOOP_", 50051, 9101),
)


# Who normally calls each service (the authorization table's caller): a test harness that holds
# the stack's trust directory dials a service as that identity; the front doors (agent loop,
# approval) it calls as the operator, with a token.
USUAL_CALLER = {
    "tool-gateway": "agent-loop",
    "llm-gateway": "agent-loop",
    "memory": "agent-loop",
    "policy": "tool-gateway",
}
OPERATOR = "operator"

# target -> (stack, service) of every stack started in this process, for such a harness.
_STARTED: dict[str, tuple[LocalStack, str]] = {}


def started_service(target: str) -> tuple[LocalStack, str] | None:
    """The running stack and service that listen on ``target``, if this process started it."""
    return _STARTED.get(target)


# The subject of the harness's token: the reviewer a harness's Resolve is recorded as.
HARNESS_SUBJECT = "alice"


def harness_credentials(target: str) -> ClientCredentials | None:
    """For a process that starts stacks and holds their keys (the tests, the benchmarks): dial
    each service as the identity that normally calls it (the tool gateway as the agent loop,
    the policy service as the tool gateway), and the front doors (agent loop, approval) as the
    operator with a token of every role and any tenant. Install with
    ``keel_core.grpc.use_client_credentials(harness_credentials)``; a target no stack of this
    process serves (an in-process component test's plaintext server) stays plaintext."""
    found = started_service(target)
    if found is None or found[0].insecure:
        return None
    stack, name = found
    caller = USUAL_CALLER.get(name)
    if caller is not None:
        return stack.credentials(caller)
    material = trust.TrustMaterial(stack.trust_dir)
    token = mint_token(material.token_signing_key(), sub=HARNESS_SUBJECT, tenant="*", roles=ROLES)
    return stack.credentials(OPERATOR, token)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nobody listens on, picked BELOW the kernel's ephemeral range:
    a port the OS hands out (bind to 0) can be taken by any outgoing connection between the
    pick and the service's bind — on a busy machine a broker client did exactly that to a
    service's metrics port. The sockets stay open until all are picked, so no port is handed
    out twice."""
    low, _high = _ephemeral_range()
    candidates = list(range(max(1024, low - 12_000), low))
    random.shuffle(candidates)
    sockets: list[socket.socket] = []
    try:
        for port in candidates:
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
            if len(sockets) == count:
                return [int(s.getsockname()[1]) for s in sockets]
        # Nothing left below the range: fall back to ports the OS picks.
        for _ in range(count - len(sockets)):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default 32768-60999)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    return free_ports(1)[0]


def with_free_ports(specs: tuple[ServiceSpec, ...] = SERVICES) -> tuple[ServiceSpec, ...]:
    """The same services on ports nobody uses, so a test stack can run beside ``make run``."""
    ports = iter(free_ports(3 * len(specs)))
    return tuple(
        ServiceSpec(
            s.name,
            s.module,
            s.env_prefix,
            next(ports),
            next(ports),
            next(ports) if s.web_port else 0,
        )
        for s in specs
    )


def with_replicas(
    specs: tuple[ServiceSpec, ...], replicas: dict[str, int]
) -> tuple[ServiceSpec, ...]:
    """``specs`` plus further replicas of the services named in ``replicas`` (name -> how many
    in all), each on ports nobody uses, started after the first of their service."""
    extra = [
        (spec, number) for spec in specs for number in range(2, replicas.get(spec.name, 1) + 1)
    ]
    # A port of ``specs`` was free when they were made and may be handed out again now: skip
    # those (asking for enough more that the skipped ones cannot run the list short).
    used = {p for s in specs for p in (s.grpc_port, s.metrics_port, s.web_port) if p}
    ports = iter([p for p in free_ports(3 * len(extra) + len(used)) if p not in used])
    added = tuple(
        ServiceSpec(
            spec.name,
            spec.module,
            spec.env_prefix,
            next(ports),
            next(ports),
            next(ports) if spec.web_port else 0,
            replica=number,
        )
        for spec, number in extra
    )
    return specs + added


@dataclass
class LocalStack:
    run_dir: Path
    kafka_bootstrap: str
    specs: tuple[ServiceSpec, ...] = SERVICES
    extra_env: dict[str, str] = field(default_factory=dict)
    # The secured local broker's credentials directory (``ca.pem``, ``<principal>.password``):
    # each service then connects as its own principal. Default: the environment's
    # ``KEEL_KAFKA_CREDENTIALS_DIR``; neither: the environment's ``KEEL_KAFKA_*`` as they are.
    kafka_credentials: Path | None = None
    # No trust material at all (``KEEL_TRUST_INSECURE_DEV``): plaintext gRPC, unsigned
    # approvals, audit and ledger. Only to measure what the trust layer costs.
    insecure: bool = False
    python: str = sys.executable
    # Milvus for every memory replica: unset, each replica gets its own Milvus Lite file (Lite
    # is one process per file, so two replicas cannot share one); a Milvus server URI here is
    # shared by all of them.
    memory_uri: str | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spec(self, name: str) -> ServiceSpec:
        """The spec of an instance: a service's name is its first replica."""
        return next(s for s in self.specs if s.instance == name)

    def target(self, name: str) -> str:
        """Where an instance (``agent-loop``, ``agent-loop-2``) serves gRPC."""
        return f"127.0.0.1:{self.spec(name).grpc_port}"

    def replicas(self, service: str) -> list[ServiceSpec]:
        return [s for s in self.specs if s.name == service]

    def targets(self, service: str) -> str:
        """Where a caller reaches ``service``: its one address, or every replica's
        (``ipv4:127.0.0.1:P1,127.0.0.1:P2``, spread round-robin by the channel), so one
        replica dying does not stop its callers."""
        ports = [s.grpc_port for s in self.replicas(service)]
        if len(ports) == 1:
            return f"127.0.0.1:{ports[0]}"
        return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)

    def memory_uri_for(self, spec: ServiceSpec) -> str:
        if self.memory_uri:
            return self.memory_uri
        name = "milvus.db" if spec.replica == 1 else f"milvus-{spec.replica}.db"
        return str(self.run_dir / "memory" / name)

    def log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    @property
    def trust_dir(self) -> Path:
        """The stack's trust material: the environment's ``KEEL_TRUST_DIR``, else a directory
        of the run made at start (kept across restarts of the same run directory)."""
        configured = self.extra_env.get("KEEL_TRUST_DIR") or os.environ.get("KEEL_TRUST_DIR")
        return Path(configured) if configured else self.run_dir / "trust"

    def env_for(self, spec: ServiceSpec) -> dict[str, str]:
        env = {
            **os.environ,
            "KEEL_TRUST_DIR": str(self.trust_dir),
            "KEEL_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            f"{spec.env_prefix}GRPC_PORT": str(spec.grpc_port),
            f"{spec.env_prefix}METRICS_PORT": str(spec.metrics_port),
            "KEEL_TOOL_GATEWAY_POLICY_TARGET": self.targets("policy"),
            "KEEL_TOOL_GATEWAY_APPROVAL_TARGET": self.targets("approval"),
            "KEEL_TOOL_GATEWAY_MEMORY__TARGET": self.targets("memory"),
            "KEEL_AGENT_LOOP_LLM_TARGET": self.targets("llm-gateway"),
            "KEEL_AGENT_LOOP_TOOL_TARGET": self.targets("tool-gateway"),
            "KEEL_AGENT_LOOP_MEMORY_TARGET": self.targets("memory"),
            "KEEL_MEMORY_MILVUS_URI": self.memory_uri_for(spec),
            "PYTHONUNBUFFERED": "1",
        }
        if spec.web_port:
            env[f"{spec.env_prefix}WEB_PORT"] = str(spec.web_port)
        credentials = self.kafka_credentials or os.environ.get("KEEL_KAFKA_CREDENTIALS_DIR")
        if credentials:
            # Its own principal and nobody else's password (not the admin's of the caller).
            env.pop("KEEL_KAFKA_PASSWORD", None)
            env.update(client_env(Path(credentials), spec.name))
        if self.insecure:
            del env["KEEL_TRUST_DIR"]
            env["KEEL_TRUST_INSECURE_DEV"] = "true"
        env.update(self.extra_env)
        return env

    def credentials(self, identity: str = OPERATOR, token: str = "") -> ClientCredentials:
        """``identity``'s certificate (and ``token``) from the stack's trust directory."""
        material = trust.TrustMaterial(self.trust_dir)
        return ClientCredentials(material.tls_identity(identity), token)

    async def start(self, timeout_s: float = 90.0) -> None:
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        if not self.insecure:
            trust.generate(self.trust_dir)
        for spec in self.specs:
            self.start_one(spec)
        deadline = time.monotonic() + timeout_s
        for spec in self.specs:
            await self.wait_healthy(spec, deadline)

    def start_one(self, spec: ServiceSpec) -> subprocess.Popen[bytes]:
        _STARTED[f"127.0.0.1:{spec.grpc_port}"] = (self, spec.name)
        with self.log_path(spec.instance).open("ab") as log:
            process = subprocess.Popen(
                [self.python, "-m", spec.module],
                env=self.env_for(spec),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[spec.instance] = process
        return process

    async def wait_healthy(self, spec: ServiceSpec, deadline: float) -> None:
        credentials = None if self.insecure else self.credentials()
        async with open_channel(f"127.0.0.1:{spec.grpc_port}", credentials) as channel:
            health = HealthClient(channel, CallOptions(timeout_s=1.0))
            while True:
                process = self.processes[spec.instance]
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{spec.instance} exited with code {process.returncode}:\n"
                        + self.log_tail(spec.instance)
                    )
                try:
                    if await health.serving():
                        return
                except KeelError:  # not up yet; poll again
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{spec.instance} not healthy in time:\n" + self.log_tail(spec.instance)
                    )
                await asyncio.sleep(0.2)

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, sig)
            process.wait(timeout=30)

    async def stop_one(self, name: str, timeout_s: float = 30.0) -> int:
        """SIGTERM one service and wait for it; its exit code (SIGKILL after the time-out)."""
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    async def stop(self, timeout_s: float = 30.0) -> dict[str, int]:
        """SIGTERM every service (front door first), wait, SIGKILL what is left; exit codes."""
        for spec in self.specs:
            _STARTED.pop(f"127.0.0.1:{spec.grpc_port}", None)
        for spec in reversed(self.specs):
            process = self.processes.get(spec.instance)
            if process and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        codes: dict[str, int] = {}
        for name, process in self.processes.items():
            try:
                remaining = max(deadline - time.monotonic(), 0.1)
                await asyncio.to_thread(process.wait, remaining)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            codes[name] = process.returncode
        return codes
