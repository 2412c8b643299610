"""Keel tool gateway: the only way a tool runs, and only after policy says ALLOW."""
