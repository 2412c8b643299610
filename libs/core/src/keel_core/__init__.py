"""The chassis of Keel services: what every service runs on, none of what it means.

Settings (``settings``), the Kafka bus with its DLQ, tables and group-less followers (``bus``),
the gRPC server bootstrap with one error mapping (``grpc``), the audit emitter (``audit``),
tracing, logging and the metrics endpoint, and the runtime that wires their lifecycle
(``runtime``: the ``Runtime`` protocol every ``app.build`` takes). The system's language lives
apart in ``keel_contracts``; ``keel_core.testing`` has the in-memory runtime and a fake clock.
"""
