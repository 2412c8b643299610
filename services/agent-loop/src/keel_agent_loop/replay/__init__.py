"""Replay: re-run a recorded session through the real agent loop and report where it diverges.

``recording`` (what a session left on Kafka, as data), ``ports`` (the loop's ports answered
from it), ``engine`` (run and compare), ``explain`` and ``report`` (words for a person),
``source`` (reading Kafka), ``live`` (another model through the LLM gateway) and ``usecase``
(the loop configured from ``Settings``, as ``keel replay`` runs it). Applications use the names
re-exported by ``keel_agent_loop``; this package's own tests go deeper.
"""

from keel_agent_loop.replay.engine import Divergence, ReplayReport, replay
from keel_agent_loop.replay.ports import ReplayAborted
from keel_agent_loop.replay.recording import NotReplayable, Recording, build_recording
from keel_agent_loop.replay.report import ReplayVerdict, replay_and_explain
from keel_agent_loop.replay.source import load_recording
from keel_agent_loop.replay.usecase import replay_recording

__all__ = [
    "Divergence",
    "NotReplayable",
    "Recording",
    "ReplayAborted",
    "ReplayReport",
    "ReplayVerdict",
    "build_recording",
    "load_recording",
    "replay",
    "replay_and_explain",
    "replay_recording",
]
