"""``keel replay``'s arguments (the replay itself is the agent loop's, tested there)."""

from __future__ import annotations

from keel_cli.main import build_parser


def test_replay_arguments() -> None:
    args = build_parser().parse_args(
        ["replay", "abc", "--system-prompt-file", "p.txt", "--model", "qwen", "--llm-target", "h:1"]
    )
    assert (args.command, args.session_id, args.model, args.llm_target) == (
        "replay",
        "abc",
        "qwen",
        "h:1",
    )
    assert str(args.system_prompt_file) == "p.txt"
    defaults = build_parser().parse_args(["replay", "abc"])
    assert (defaults.model, defaults.llm_target, defaults.system_prompt_file) == (
        None,
        "127.0.0.1:50052",
        None,
    )
