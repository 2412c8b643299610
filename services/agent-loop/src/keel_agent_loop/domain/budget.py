"""Limits of one session: the model's context window and the session's token and cost
budgets. Each check returns the reason to stop ("" when within limits), so the loop decides
what stopping means."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keel_agent_loop.domain.context import (
    TokenCounter,
    count_messages,
    count_tools,
    trim_history,
)
from keel_agent_loop.domain.models import AgentState, ChatMessage, ToolSpec


@dataclass(frozen=True)
class Fitted:
    messages: list[ChatMessage]
    dropped: int
    # Estimated tokens of the prompt as it will be sent: history plus tool catalog.
    prompt_tokens: int


class BudgetGuard:
    def __init__(self, counter: TokenCounter, window_tokens: int, reply_reserve_tokens: int):
        self._counter = counter
        self._window = window_tokens
        self._reserve = reply_reserve_tokens
        # The catalog's share, for the catalog last seen: the same specs at almost every step.
        self._tools_seen: tuple[ToolSpec, ...] = ()
        self._tools_tokens = 0

    def fit_window(self, messages: Sequence[ChatMessage], catalog: Sequence[ToolSpec]) -> Fitted:
        """Trim the oldest turns so history, catalog and the reply reserve fit the window."""
        tools = self._catalog_tokens(catalog)
        budget = max(self._window - self._reserve - tools, 0)
        kept, dropped = trim_history(messages, budget, self._counter)
        return Fitted(kept, dropped, count_messages(self._counter, kept) + tools)

    def _catalog_tokens(self, catalog: Sequence[ToolSpec]) -> int:
        specs = tuple(catalog)
        if specs != self._tools_seen:
            self._tools_seen, self._tools_tokens = specs, count_tools(self._counter, specs)
        return self._tools_tokens

    @staticmethod
    def over_before_call(state: AgentState, prompt_tokens: int) -> str:
        """A call whose prompt alone would exceed what is left of the budget is not made."""
        if state.token_budget is None:
            return ""
        used = state.usage.prompt_tokens + state.usage.completion_tokens
        remaining = state.token_budget - used
        if prompt_tokens <= remaining:
            return ""
        return (
            f"token budget of {state.token_budget} exceeded: used {used}, and the next prompt "
            f"needs about {prompt_tokens} tokens but only {max(remaining, 0)} remain"
        )

    @staticmethod
    def over_after_call(state: AgentState) -> str:
        used = state.usage.prompt_tokens + state.usage.completion_tokens
        if state.token_budget is not None and used > state.token_budget:
            return f"token budget of {state.token_budget} exceeded: used {used}"
        cost = state.usage.cost_usd
        if state.cost_budget_usd is not None and cost > state.cost_budget_usd:
            return f"cost budget of ${state.cost_budget_usd:.4f} exceeded: used ${cost:.4f}"
        return ""
