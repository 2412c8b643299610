"""Keel policy service: deny-by-default, priority-ordered rules on every tool call."""
