"""A session's persona: the stance a plan node gave it, added to the system prompt.

A debate is only a debate when its agents see different instructions: the stance (a name and
a prompt, from ``TaskSubmitted.metadata``; see ``keel_contracts.events.plans.persona_metadata``)
goes into the system message, where the model weighs it as the operator's framing, and the
name is written as a ``Stance: <name>`` line so the judge, the timeline and the scripted model
can tell the debaters apart. Because the system message is part of the LLM gateway's cache
key, two stances never share a cached answer. A node's sampling (temperature and seed) goes
with every model call of its session.
"""

from __future__ import annotations

from collections.abc import Mapping

from keel_contracts.events.plans import Sampling, sampling_of, stance_of

STANCE_LINE = "Stance: "


def system_prompt_for(base: str, metadata: Mapping[str, str]) -> str:
    """``base`` with the session's stance appended; ``base`` unchanged without one."""
    stance = stance_of(dict(metadata))
    if stance is None:
        return base
    addition = f"{STANCE_LINE}{stance.name}"
    if stance.prompt:
        addition += f"\n{stance.prompt}"
    return f"{base}\n\n{addition}"


def sampling_for(metadata: Mapping[str, str]) -> Sampling | None:
    """The session's own sampling (a debater's temperature), or None for the defaults. A
    sampled call (temperature above 0) is never offered to the LLM gateway's response cache:
    each debater's draw is its own."""
    return sampling_of(dict(metadata))
