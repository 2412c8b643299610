"""The keel command: the user's way in (submit, watch), and the local stack (dev up)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from keel_cli import credentials
from keel_cli.asyncapi import print_asyncapi
from keel_cli.audit_tail import audit_tail
from keel_cli.config import CliSettings
from keel_cli.console import silence_stdout
from keel_cli.dev import DEMO_GOAL, dev_up
from keel_cli.follow import SessionFollower
from keel_cli.guards_cmd import add_guards_parser, guards_command
from keel_cli.mcp_cmd import add_mcp_parser, mcp_command
from keel_cli.memory_cmd import add_memory_parser, memory_command
from keel_cli.ops_approvals import add_approvals_parser, approvals_command
from keel_cli.ops_audit import audit_verify
from keel_cli.ops_dlq import add_dlq_parser, dlq_command
from keel_cli.ops_sessions import cancel_session, show_result, watch_after
from keel_cli.plans import add_plan_parser, plan_command
from keel_cli.policy_cmd import add_policy_parser, policy_command
from keel_cli.replay_cmd import add_replay_parser, replay_command
from keel_cli.tasks import publish_task, submit_via_grpc
from keel_cli.watch import answer_of, print_session
from keel_contracts.errors import KeelError
from keel_contracts.events import TaskSubmitted
from keel_contracts.topics import AUDIT
from keel_core import trust
from keel_core.bus.admin import ensure_topics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    submit = sub.add_parser("submit", help="submit a task and follow it to its result")
    submit.add_argument("goal")
    submit.add_argument("--via", choices=["kafka", "grpc"], default="kafka")
    submit.add_argument("--max-iterations", type=int, default=8)
    submit.add_argument("--profile", default="default")
    submit.add_argument("--no-wait", action="store_true", help="print the session id and exit")
    submit.add_argument("--timeout", type=float, default=300.0)

    watch = sub.add_parser("watch", help="print a session's progress and result")
    watch.add_argument("session_id")
    watch.add_argument("--timeout", type=float, default=300.0)
    watch.add_argument(
        "--after",
        metavar="EVENT_ID",
        default="",
        help="only the events after this one (an id printed by an earlier --after watch)",
    )

    sub.add_parser("topics", help="create Keel's topics (idempotent)")

    add_plan_parser(sub)
    add_policy_parser(sub)
    add_guards_parser(sub)

    audit = sub.add_parser("audit", help="audit records")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    tail = audit_sub.add_parser("tail", help="print the latest records and verify hash chains")
    tail.add_argument("-n", "--limit", type=int, default=50)
    verify = audit_sub.add_parser(
        "verify", help="check signatures, chains, run links and signed heads; report every break"
    )
    verify.add_argument("--topic", default=AUDIT)

    add_dlq_parser(sub)
    add_approvals_parser(sub)
    add_replay_parser(sub)
    add_mcp_parser(sub)
    add_memory_parser(sub)

    cancel = sub.add_parser("cancel", help="ask the agent loop to cancel a session")
    cancel.add_argument("session_id")
    cancel.add_argument("--reason", default="cancelled from the keel command")
    cancel.add_argument("--timeout", type=float, default=10.0)

    result = sub.add_parser("result", help="print a session's final answer or error")
    result.add_argument("session_id")

    sub.add_parser("asyncapi", help="print the AsyncAPI document of Keel's topics")

    dev = sub.add_parser("dev", help="the local stack")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    up = dev_sub.add_parser("up", help="start Kafka and the six services")
    up.add_argument("--demo", action="store_true", help="run a sample task end to end")
    up.add_argument("--once", action="store_true", help="stop after the demo")
    up.add_argument("--goal", default=DEMO_GOAL, help="the demo task")
    up.add_argument("--free-ports", action="store_true", help="run beside another stack")
    up.add_argument("--run-dir", type=Path, default=None, help="logs and data (default .run)")
    material = dev_sub.add_parser(
        "trust", help="make a directory of trust material (signing keys) for KEEL_TRUST_DIR"
    )
    material.add_argument("directory", type=Path)
    material.add_argument(
        "--rotate",
        metavar="KEY",
        help="replace one key (approval-signing, audit-<identity>, ledger); the old one is "
        "kept in retired/ for verification",
    )
    token = dev_sub.add_parser(
        "token", help="mint a bearer token with the trust directory's dev key (KEEL_TRUST_DIR)"
    )
    token.add_argument("--sub", required=True, help="who: a reviewer's or submitter's name")
    token.add_argument("--tenant", default="default", help="the tenant ('*': any, operators)")
    token.add_argument(
        "--roles", default="submitter", help="comma-separated: submitter, reviewer, operator"
    )
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires")
    return parser


async def _make_trust(directory: Path, rotate: str | None = None) -> int:
    if rotate:
        trust.rotate(directory, rotate)
        print(f"rotated {rotate} in {directory}; restart its writer (readers keep the old key)")
        return 0
    trust.generate(directory)
    print(f"trust material in {directory} (existing keys kept); use KEEL_TRUST_DIR={directory}")
    return 0


async def _dev_token(settings: CliSettings, args: argparse.Namespace) -> int:
    roles = [role.strip() for role in args.roles.split(",") if role.strip()]
    print(
        credentials.dev_token(
            settings, sub=args.sub, tenant=args.tenant, roles=roles, ttl_s=args.ttl
        )
    )
    return 0


async def _submit(settings: CliSettings, args: argparse.Namespace) -> int:
    task = TaskSubmitted(
        goal=args.goal, max_iterations=args.max_iterations, agent_profile=args.profile
    )
    if args.no_wait:
        if args.via == "grpc":
            session_id = await submit_via_grpc(settings.agent_target, task)
        else:
            session_id = await publish_task(settings.kafka, task)
        print(session_id)
        return 0
    async with SessionFollower(settings.kafka, start="end") as follower:
        if args.via == "grpc":
            session_id = await submit_via_grpc(settings.agent_target, task)
        else:
            session_id = await publish_task(settings.kafka, task)
        print(f"session {session_id}")
        result = await print_session(follower, session_id, args.timeout)
    answer = answer_of(result)
    if answer is None:
        return 1
    print(f"answer: {answer}")
    return 0


async def _watch(settings: CliSettings, args: argparse.Namespace) -> int:
    if args.after:
        return await watch_after(settings.agent_target, args.session_id, args.after, args.timeout)
    async with SessionFollower(settings.kafka, start="beginning") as follower:
        result = await print_session(follower, args.session_id, args.timeout)
    answer = answer_of(result)
    if answer is not None:
        print(f"answer: {answer}")
    return 0 if answer is not None else 1


def _command(settings: CliSettings, args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    if args.command == "submit":
        return _submit(settings, args)
    if args.command == "watch":
        return _watch(settings, args)
    if args.command == "plan":
        return plan_command(settings, args)
    if args.command == "policy":
        return policy_command(args, settings.kafka)
    if args.command == "audit":
        if args.audit_command == "verify":
            return audit_verify(settings.kafka, args.topic, settings.trust)
        return audit_tail(settings.kafka, args.limit)
    if (ops := _ops_command(settings, args)) is not None:
        return ops
    if args.command == "dev" and args.dev_command == "trust":
        return _make_trust(args.directory, args.rotate)
    if args.command == "dev" and args.dev_command == "token":
        return _dev_token(settings, args)
    if args.command == "dev":
        return dev_up(
            demo=args.demo,
            once=args.once,
            goal=args.goal,
            free_ports=args.free_ports,
            run_dir=args.run_dir,
        )
    return _topics(settings)


def _ops_command(
    settings: CliSettings, args: argparse.Namespace
) -> Coroutine[Any, Any, int] | None:
    """The operator's commands (dead letters, approvals, cancel, result, asyncapi, replay)."""
    if args.command == "dlq":
        return dlq_command(settings.kafka, args)
    if args.command == "approvals":
        return approvals_command(settings.approval_target, args)
    if args.command == "cancel":
        return cancel_session(settings.agent_target, args.session_id, args.reason, args.timeout)
    if args.command == "result":
        return show_result(settings.agent_target, args.session_id)
    if args.command == "asyncapi":
        return print_asyncapi()
    if args.command == "replay":
        return replay_command(settings.kafka, args)
    if args.command == "mcp":
        return mcp_command(args)
    if args.command == "memory":
        return memory_command(args)
    if args.command == "guards":
        return guards_command(args)
    return None


async def _topics(settings: CliSettings) -> int:
    await ensure_topics(settings.kafka)
    print("topics ready")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = CliSettings()
    restore_identity = credentials.install(settings)
    try:
        code = asyncio.run(_command(settings, args))
    except KeelError as exc:
        print(f"keel: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # The reader went away (`keel watch <id> | head`): stop quietly, and keep the
        # interpreter's final flush of stdout from failing again.
        silence_stdout()
        code = 141
    finally:
        restore_identity()
    raise SystemExit(code)
