"""``keel dev up``: Kafka, topics, the six services, and optionally a demo task end to end."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from keel_cli.broker import (
    client_env,
    credentials_dir,
    kafka_settings,
    repo_root,
    secured,
    start_broker,
    stop_broker,
)
from keel_cli.console import say
from keel_cli.follow import SessionFollower
from keel_cli.stack import SERVICES, LocalStack, with_free_ports
from keel_cli.tasks import publish_task
from keel_cli.watch import answer_of, print_session
from keel_contracts.events import TaskSubmitted
from keel_core.bus.admin import ensure_topics
from keel_core.settings import KafkaSettings

DEMO_GOAL = "What is (17 * 23) + 4?"


async def dev_up(
    demo: bool,
    once: bool,
    goal: str = DEMO_GOAL,
    free_ports: bool = False,
    run_dir: Path | None = None,
) -> int:
    """``free_ports`` and ``run_dir`` let a second stack run beside ``make run`` (tests)."""
    root = repo_root()
    run_dir = run_dir or root / ".run"
    external = os.environ.get("KEEL_KAFKA_BOOTSTRAP")
    print("• Kafka: " + (f"using {external}" if external else "starting the local broker…"))
    # A long-running broker: full JIT (slower start, ~2x faster acknowledgements once warm).
    jvm = {"KEEL_KAFKA_JVM_OPTS": os.environ.get("KEEL_KAFKA_JVM_OPTS", "-XX:+UseSerialGC")}
    bootstrap = external if external else await asyncio.to_thread(start_broker, root, jvm)
    # The local broker is secured unless KEEL_KAFKA_SECURITY=plaintext: topics are created as
    # the admin, each service connects as itself, the demo task goes in as the operator.
    credentials = credentials_dir(root, jvm) if not external and secured(jvm) else None
    if credentials is None:
        admin = kafka = KafkaSettings(bootstrap=bootstrap)
    else:
        admin = kafka_settings(bootstrap, credentials)
        kafka = kafka_settings(bootstrap, credentials, "operator")
    await ensure_topics(admin)
    specs = with_free_ports() if free_ports else SERVICES
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=bootstrap,
        specs=specs,
        extra_env=model_env(),
        kafka_credentials=credentials,
    )
    print("• starting policy, memory, llm-gateway, tool-gateway, approval, agent-loop…")
    try:
        await stack.start()
        _print_endpoints(stack, run_dir, bootstrap, credentials)
        code = 0
        if demo:
            code = await _run_demo(kafka, goal)
        if not once:
            print('\nKeel is running. Submit more with: .venv/bin/keel submit "What is 6 * 7?"')
            print("Press Ctrl-C to stop everything.")
            await _wait_for_interrupt()
        return code
    finally:
        # Nothing here may depend on a writable terminal: after Ctrl-C of `make run | tee`
        # the reader is gone, and a failed print must not leave services or the broker up.
        say("\n• stopping services…")
        codes = await stack.stop()
        bad = {name: c for name, c in codes.items() if c != 0}
        if bad:
            say(f"  services that did not exit cleanly: {bad}")
        if not external:
            say("• stopping Kafka…")
            await asyncio.to_thread(stop_broker, root)
        say("• stopped.")


def model_env() -> dict[str, str]:
    """``make run`` thinks with the offline model (fetched by ``make install``) unless the
    environment picks a provider (``KEEL_LLM_GATEWAY_PROVIDER=scripted`` for the scripted one)."""
    if os.environ.get("KEEL_LLM_GATEWAY_PROVIDER"):
        return {}
    print("• model: the offline Qwen2.5-Coder (llm-gateway provider local)")
    return {"KEEL_LLM_GATEWAY_PROVIDER": "local"}


async def _run_demo(kafka: KafkaSettings, goal: str) -> int:
    print(f"\n• demo task: {goal!r}")
    async with SessionFollower(kafka, start="end") as follower:
        session_id = await publish_task(kafka, TaskSubmitted(goal=goal))
        print(f"  published to keel.tasks as session {session_id}")
        result = await print_session(follower, session_id, timeout_s=120)
    answer = answer_of(result)
    if answer is None:
        print("\n✗ the demo task did not complete")
        return 1
    print(f"\n✓ final answer (from keel.results): {answer}")
    return 0


def _print_endpoints(
    stack: LocalStack, run_dir: Path, bootstrap: str, credentials: Path | None
) -> None:
    print(f"• all services healthy (logs in {run_dir / 'logs'})")
    for spec in stack.specs:
        print(
            f"  {spec.name:<13} grpc 127.0.0.1:{spec.grpc_port}   "
            f"metrics http://127.0.0.1:{spec.metrics_port}/metrics"
        )
        if spec.web_port:
            print(f"  {'':<13} approval inbox http://127.0.0.1:{spec.web_port}/")
    if credentials is None:
        print(f"  Kafka         {bootstrap}")
    else:
        print(f"  Kafka         {bootstrap} (TLS + SCRAM, ACLs; credentials in {credentials})")
        print("  as the operator (keel submit, keel audit …), first:")
        for name, value in client_env(credentials, "operator").items():
            print(f"    export {name}={value}")
    print("  audit records: topic keel.audit — `.venv/bin/keel audit tail`")


async def _wait_for_interrupt() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
