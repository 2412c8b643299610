"""Output guards and escalation (docs/guards.md): the guards file, the engine, its hot reload
and the audited stage the loop calls."""

from keel_agent_loop.guards.engine import REDACTED, GuardEngine
from keel_agent_loop.guards.explain import describe, explain_guards
from keel_agent_loop.guards.loader import load_guards
from keel_agent_loop.guards.models import GuardsDocument
from keel_agent_loop.guards.reloader import GuardsReloader, load_holder
from keel_agent_loop.guards.service import AuditedGuards, GuardHolder

__all__ = [
    "REDACTED",
    "AuditedGuards",
    "GuardEngine",
    "GuardHolder",
    "GuardsDocument",
    "GuardsReloader",
    "describe",
    "explain_guards",
    "load_guards",
    "load_holder",
]
