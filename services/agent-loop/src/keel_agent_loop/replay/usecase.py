"""Replay a recorded session with the loop configured as it is today: the use case behind
``keel replay``.

The loop is built from the agent loop's own ``Settings`` (system prompt, memory budget,
context window), so the question answered is "would today's loop send the same prompts?";
``system_prompt`` tries another system prompt, ``model`` another model behind the LLM gateway.
"""

from __future__ import annotations

import dataclasses

from keel_agent_loop.config import Settings
from keel_agent_loop.domain.loop import LoopConfig
from keel_agent_loop.replay.live import GatewayModel
from keel_agent_loop.replay.recording import Recording
from keel_agent_loop.replay.report import ReplayVerdict, replay_and_explain
from keel_clients import open_channel
from keel_contracts.canonical import sha256_hex

DEFAULT_LLM_TARGET = "127.0.0.1:50052"


async def replay_recording(
    recording: Recording,
    settings: Settings,
    *,
    system_prompt: str | None = None,
    model: str | None = None,
    llm_target: str = DEFAULT_LLM_TARGET,
    timeout_s: float = 120.0,
) -> ReplayVerdict:
    """Replay ``recording`` through the real ``AgentLoop`` over recorded ports and explain the
    first divergence.

    Args:
        recording: the session, as ``load_recording`` read it.
        settings: the agent loop's settings; the loop is configured from them as the service
            configures it.
        system_prompt: replay with this system prompt instead of the configured one.
        model: also ask this model (through the LLM gateway at ``llm_target``, ``timeout_s``
            per call) at every step, and stop at the first answer that differs.

    Raises:
        ReplayAborted: the live model failed, so there is nothing to compare.
    """
    configured = settings.loop_config()
    config = configured
    if system_prompt is not None:
        config = dataclasses.replace(configured, system_prompt=system_prompt)
    baseline = _baseline(recording, configured)
    if not model:
        return await replay_and_explain(recording, config, baseline=baseline)
    async with open_channel(llm_target) as channel:  # the caller's identity (mTLS, token)
        live = GatewayModel(channel, model, timeout_s)
        return await replay_and_explain(recording, config, live=live, baseline=baseline)


def _baseline(recording: Recording, configured: LoopConfig) -> LoopConfig | None:
    """The configured loop, when its system prompt is the one the session ran with: it then
    rebuilds the recorded prompts, whose text a divergence report can show."""
    if sha256_hex(configured.system_prompt) == recording.system_prompt_sha256:
        return configured
    return None
