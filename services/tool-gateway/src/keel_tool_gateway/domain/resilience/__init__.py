"""The gateway's rules for retries and circuit breakers, between the policy decision and the
tool: ``spec`` (a tool's declaration; imports nothing of the gateway, so ``Tool`` can carry
one), ``errors``, ``rules`` (what is retried, what counts against a breaker), ``settings``
and ``single`` (one attempt, the default). The retrying runner and the breakers themselves are
``adapters.resilience``, reached through ``domain.ports.ResiliencePort``. Nothing is
re-exported here, so importing ``spec`` from the registry cannot cycle back into it.
"""
