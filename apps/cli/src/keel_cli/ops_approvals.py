"""``keel approvals list|approve|reject|modify``: the reviewer's side of human-in-the-loop, over
``ApprovalService``. ``--token`` sends ``authorization: Bearer <token>`` for when the approval
service authenticates reviewers."""

from __future__ import annotations

import argparse
import json

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_contracts.errors import InvalidArgument
from keel_core.grpc import call_with_errors, insecure_channel

OUTCOMES = {
    "approve": approval_pb2.OUTCOME_APPROVE,
    "reject": approval_pb2.OUTCOME_REJECT,
    "modify": approval_pb2.OUTCOME_MODIFY,
}


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


def describe(approval: approval_pb2.Approval) -> str:
    status = approval_pb2.ApprovalStatus.Name(approval.status).removeprefix("APPROVAL_STATUS_")
    line = (
        f"{approval.id}  {status.lower():<9} session={approval.session_id} "
        f"tool={approval.tool_name} args={approval.arguments_json}"
    )
    if approval.deadline and status == "PENDING":
        line += f" deadline={approval.deadline}"
    if approval.required_approvals > 1:
        votes = ",".join(approval.approved_by) or "none"
        line += f" votes={len(approval.approved_by)}/{approval.required_approvals}({votes})"
    if approval.consequences and status == "PENDING":
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
    metadata = (("authorization", f"Bearer {args.token}"),) if args.token else None
    async with insecure_channel(target) as channel:
        stub = approval_pb2_grpc.ApprovalServiceStub(channel)
        if args.approvals_command == "list":
            request = approval_pb2.ListRequest(include_resolved=args.all)
            listed = await call_with_errors(
                lambda: stub.List(request, timeout=args.timeout, metadata=metadata)
            )
            for approval in listed.approvals:
                print(describe(approval))
            print(f"{len(listed.approvals)} request(s)")
            return 0
        resolve = approval_pb2.ResolveRequest(
            id=args.approval_id,
            outcome=OUTCOMES[args.approvals_command],
            reviewer=args.reviewer,
            comment=args.comment,
            modified_arguments_json=_modified_args(args),
        )
        decided = await call_with_errors(
            lambda: stub.Resolve(resolve, timeout=args.timeout, metadata=metadata)
        )
    print(describe(decided))
    return 0
