"""Retries for retryable failures and a circuit breaker per dependency, between the policy
decision and the tool (``runner.Resilience``).

Modules: ``spec`` (a tool's declaration; imports nothing of the gateway, so ``Tool`` can carry
one), ``errors``, ``breaker``, ``settings``, ``runner``. Nothing is re-exported here, so
importing ``spec`` from the registry cannot cycle back into it.
"""
