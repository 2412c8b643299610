"""Shared plumbing for Keel services.

Every service is built from the same parts: settings (``settings``), a Kafka bus with a DLQ
(``bus``), a gRPC server bootstrap with one error mapping (``grpc``), an audit emitter
(``audit``), a metrics endpoint (``metrics``) and a runtime that wires their lifecycle
(``runtime``).
"""
