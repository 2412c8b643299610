"""What the model is shown: the opening messages of a session (system prompt, retrieved
memory, goal) and, before every call, the history fitted to the context window.

Retrieved memory is a marked-data user message after the goal (never a system message: it is
untrusted text), so it counts toward the window; a memory service that answers with an error
costs the session its memory, never the session itself. One that cannot be reached
(``Unavailable``, ``DeadlineExceeded``) raises ``ServiceOutage``: the session waits for it
rather than run without its memory.
"""

from __future__ import annotations

import logging

from keel_agent_loop.domain.budget import BudgetGuard
from keel_agent_loop.domain.context import TokenCounter, fit_memories
from keel_agent_loop.domain.loop_config import LoopConfig
from keel_agent_loop.domain.models import AgentState, ToolSpec
from keel_agent_loop.domain.persona import system_prompt_for
from keel_agent_loop.domain.ports import MemoryPort
from keel_agent_loop.domain.prompts import opening_messages
from keel_agent_loop.domain.reporter import SessionReporter
from keel_agent_loop.errors import ServiceOutage
from keel_contracts.errors import DeadlineExceeded, KeelError, Unavailable

log = logging.getLogger(__name__)


class ContextBuilder:
    def __init__(
        self,
        memory: MemoryPort,
        config: LoopConfig,
        counter: TokenCounter,
        reporter: SessionReporter,
    ) -> None:
        self._memory = memory
        self._config = config
        self._counter = counter
        self._reporter = reporter
        self._budget = BudgetGuard(
            counter, config.context_window_tokens, config.reply_reserve_tokens
        )

    async def open(self, state: AgentState) -> list[str]:
        """Set the session's opening messages; the memory items they carry."""
        memories = await self._recall(state)
        system = system_prompt_for(self._config.system_prompt, state.metadata)
        state.messages = opening_messages(system, memories, state.goal)
        return memories

    async def fit(self, state: AgentState, catalog: list[ToolSpec]) -> int:
        """Drop the oldest turns that do not fit the window (``history_trimmed``); the
        estimated tokens of the prompt as it will be sent."""
        fitted = self._budget.fit_window(state.messages, catalog)
        if fitted.dropped:
            state.messages = fitted.messages
            await self._reporter.emit(
                state,
                "history_trimmed",
                {
                    "dropped": fitted.dropped,
                    "kept": len(fitted.messages),
                    "prompt_tokens": fitted.prompt_tokens,
                    "window_tokens": self._config.context_window_tokens,
                },
            )
        return fitted.prompt_tokens

    async def _recall(self, state: AgentState) -> list[str]:
        budget = self._config.memory_token_budget
        if budget <= 0:
            return []
        try:
            items = await self._memory.retrieve(state.context(), state.goal, budget)
        except (Unavailable, DeadlineExceeded) as exc:
            raise ServiceOutage("memory", exc) from exc
        except KeelError as exc:
            log.warning(
                "memory unavailable for %s, continuing without it: %s", state.session_id, exc
            )
            return []
        return fit_memories(items, budget, self._counter)
