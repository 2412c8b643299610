"""The LLM gateway's use cases: ``completions.Completions`` (what the gRPC front calls: a
completion or a stream, counted, priced and audited) over ``gateway.Gateway`` (route, cache,
budget, call along the chain, check, account, settle), which walks a chain of providers with
``fallback.ChainCaller`` and reports through ``observer.GatewayObserver``. The rules they use
(routing, budgets, cache keys, accounting, output checks) are in ``domain``."""
