"""Printing that never stops the program: a reader that went away (``make run | tee`` after
Ctrl-C, ``keel watch | head``) must not keep teardown from stopping what it started."""

from __future__ import annotations

import os
import sys


def say(text: str = "") -> None:
    """Print a line; once stdout is gone, send it (and every later write) to /dev/null."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, OSError):
        silence_stdout()


def silence_stdout() -> None:
    """Point stdout at /dev/null, so neither later prints nor the interpreter's final flush
    fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
