"""Keel agent loop: runs ReAct sessions from ``keel.tasks`` and serves the AgentService."""
