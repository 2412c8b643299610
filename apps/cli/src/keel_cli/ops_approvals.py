"""``keel approvals list|approve|reject|modify``: the reviewer's side of human-in-the-loop, over
``ApprovalService``. ``--token`` sends ``authorization: Bearer <token>`` for when the approval
service authenticates reviewers."""

from __future__ import annotations

import argparse
import json
from typing import get_args

from keel_clients import ApprovalClient, CallOptions, open_channel
from keel_contracts.approvals import ApprovalView, ReviewOutcome
from keel_contracts.errors import InvalidArgument

OUTCOMES: tuple[ReviewOutcome, ...] = get_args(ReviewOutcome)


def add_approvals_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    approvals = sub.add_parser("approvals", help="review tool calls that need a person's approval")
    approvals_sub = approvals.add_subparsers(dest="approvals_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--token", default="", help="reviewer bearer token")
        parser.add_argument("--timeout", type=float, default=10.0)

    listing = approvals_sub.add_parser("list", help="pending requests (--all: decided ones too)")
    listing.add_argument("--all", action="store_true")
    common(listing)
    for name in OUTCOMES:
        cmd = approvals_sub.add_parser(name, help=f"{name} one request")
        cmd.add_argument("approval_id")
        cmd.add_argument("--reviewer", required=True)
        cmd.add_argument("--comment", default="")
        if name == "modify":
            cmd.add_argument("--args", required=True, help="the tool arguments to use, as JSON")
        common(cmd)


def describe(approval: ApprovalView) -> str:
    status = approval.status
    line = (
        f"{approval.id}  {status:<9} session={approval.session_id} "
        f"tool={approval.tool_name} args={approval.arguments_json}"
    )
    if approval.deadline and status == "pending":
        line += f" deadline={approval.deadline}"
    if approval.required_approvals > 1:
        votes = ",".join(approval.approved_by) or "none"
        line += f" votes={len(approval.approved_by)}/{approval.required_approvals}({votes})"
    if approval.consequences and status == "pending":
        line += f"\n    would: {approval.consequences}"
    if approval.decided_by:
        line += f" by={approval.decided_by}"
    if approval.comment:
        line += f" comment={approval.comment!r}"
    if approval.modified_arguments_json:
        line += f" modified={approval.modified_arguments_json}"
    return line


def _modified_args(args: argparse.Namespace) -> str:
    if args.approvals_command != "modify":
        return ""
    try:
        parsed = json.loads(args.args)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"--args is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidArgument("--args must be a JSON object")
    return json.dumps(parsed)


async def approvals_command(target: str, args: argparse.Namespace) -> int:
    async with open_channel(target) as channel:
        approvals = ApprovalClient(channel, CallOptions(timeout_s=args.timeout, token=args.token))
        if args.approvals_command == "list":
            listed = await approvals.list(include_resolved=args.all)
            for approval in listed:
                print(describe(approval))
            print(f"{len(listed)} request(s)")
            return 0
        decided = await approvals.resolve(
            args.approval_id,
            args.approvals_command,
            reviewer=args.reviewer,
            comment=args.comment,
            modified_arguments_json=_modified_args(args),
        )
    print(describe(decided))
    return 0
