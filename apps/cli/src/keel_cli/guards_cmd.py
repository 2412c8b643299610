"""``keel guards``: try an answer or a tool call against a guards file, in-process.

``keel guards test FILE --answer TEXT`` (or ``--tool NAME --args JSON``) prints every rule
that matched, why, and the verdict that wins (with the redacted text for ``redact``); it exits
0 for pass, 1 for block, 3 for require approval, 4 for redact and 2 when the file is invalid.
``keel guards check FILE`` only validates. The engine is the agent loop's own, so the answer
is the one the service would give with that file (docs/guards.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EXIT_CODES = {"pass": 0, "block": 1, "require_approval": 3, "redact": 4}


def add_guards_parser(sub: Any) -> None:
    guards = sub.add_parser("guards", help="check guards files and try answers and calls")
    guards_sub = guards.add_subparsers(dest="guards_command", required=True)
    test = guards_sub.add_parser(
        "test",
        help="decide one answer or tool call "
        "(exit 0 pass, 1 block, 3 require approval, 4 redact, 2 invalid)",
    )
    test.add_argument("file", type=Path, help="a guards file (YAML)")
    what = test.add_mutually_exclusive_group(required=True)
    what.add_argument("--answer", help="a final answer to check")
    what.add_argument("--tool", help="the tool name of a call to check")
    test.add_argument("--args", default="{}", help="the call's arguments as a JSON object")
    check = guards_sub.add_parser("check", help="validate a guards file")
    check.add_argument("file", type=Path)


async def guards_command(args: argparse.Namespace) -> int:
    # Imported here so the rest of the CLI does not load the guard engine.
    from keel_agent_loop import explain_guards

    if args.guards_command == "check":
        explain_guards(args.file, answer="")
        print(f"ok: {args.file}")
        return 0
    verdict, text = explain_guards(
        args.file, answer=args.answer, tool=args.tool or "", args=args.args
    )
    print(text)
    return EXIT_CODES[verdict]
