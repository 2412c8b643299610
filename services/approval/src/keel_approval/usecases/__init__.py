"""The approval service's use cases: request intake (``intake``), deciding and the deadline
sweep (``decisions``), the start-up rebuild and following (``rebuild``, ``startup``).
Handlers (gRPC, Kafka, the web inbox) translate and call these; the rules are in ``domain``."""
