"""Resilience primitives shared by services (circuit breakers)."""
