"""The agent loop's application services: what the Kafka handler and the gRPC servicer call.

``SessionRunner`` drives sessions from records (start or resume, decide, cancel) and finishes
them through ``Finisher`` (result, audit, episodic memory, finish hooks); ``FrontDoor`` is what
the AgentService offers (submit, get, watch, cancel).
"""

from keel_agent_loop.usecases.finish_session import Finisher, FinishHook, result_of
from keel_agent_loop.usecases.front_door import FrontDoor
from keel_agent_loop.usecases.run_session import (
    OutagePolicy,
    SessionDefaults,
    SessionRunner,
    state_from_task,
)

__all__ = [
    "FinishHook",
    "Finisher",
    "FrontDoor",
    "OutagePolicy",
    "SessionDefaults",
    "SessionRunner",
    "result_of",
    "state_from_task",
]
