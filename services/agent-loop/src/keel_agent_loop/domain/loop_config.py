"""What an agent loop is configured with (``keel_agent_loop.config.Settings`` in a service,
a recording's own values in a replay)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoopConfig:
    system_prompt: str
    memory_token_budget: int = 400
    # Longest tool output or answer copied into a progress event (the messages keep it whole).
    preview_chars: int = 500
    context_window_tokens: int = 8192
    # Tokens of the window kept free for the model's reply.
    reply_reserve_tokens: int = 1024
    checkpoint_every: int = 1
