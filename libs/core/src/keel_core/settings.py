"""Settings shared by every service. Each service has one ``Settings`` class of its own with the
env prefix ``KEEL_<SERVICE>_``; the Kafka connection is shared and read from ``KEEL_KAFKA_*``.

Settings are built once in ``main()`` and passed down: nothing else reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from keel_core.trust import TrustSettings


class KafkaSettings(BaseSettings):
    """Where the broker is and how to prove who we are to it. ``KEEL_KAFKA_BOOTSTRAP`` points
    every service at one cluster; the security fields let the same code reach a secured one
    (the local launcher's, or a managed cluster) unchanged. Every aiokafka client Keel builds
    takes them from ``keel_core.bus.connect.client_options``.
    """

    model_config = SettingsConfigDict(env_prefix="KEEL_KAFKA_", extra="ignore")

    bootstrap: str = "127.0.0.1:9092"
    client_id_prefix: str = "keel"
    # How long a service waits for the broker at start-up before giving up with a clear message.
    connect_timeout_s: float = 20.0
    topic_partitions: int = 3
    # Copies of each topic Keel creates and how many must hold a write before acks=all
    # answers: 1 for the single dev broker; on the launcher's 3-node cluster 3 and 2, so one
    # broker can die without losing an acknowledged record or stopping producers. Unset min
    # ISR: the cluster's own default (the launcher sets it to match its size), so a managed
    # cluster's stricter default is never weakened by Keel.
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int | None = Field(default=None, ge=1)
    # PLAINTEXT only for a cluster that asks for nothing (KEEL_KAFKA_BOOTSTRAP without security,
    # or the launcher's KEEL_KAFKA_SECURITY=plaintext). The launcher's default is SASL_SSL.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    # The principal: each service has its own (its service name under the local launcher).
    username: str = ""
    # Either the password itself (KEEL_KAFKA_PASSWORD) or a file holding it
    # (KEEL_KAFKA_PASSWORD_FILE, read when a client is built); never logged (SecretStr).
    password: SecretStr = SecretStr("")
    password_file: Path | None = None
    # TLS: the CA that signed the broker's certificate (the system's CAs when unset), and a
    # client certificate and key for clusters that ask for mutual TLS.
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None


class TracingSettings(BaseSettings):
    """Where spans go (``KEEL_TRACING_*``, shared by every service). Off by default; trace
    context flows through Kafka and gRPC either way."""

    model_config = SettingsConfigDict(env_prefix="KEEL_TRACING_", extra="ignore")

    # "otlp": OTLP over gRPC to a collector (Jaeger, Tempo, the OpenTelemetry Collector);
    # "console": spans as JSON on stdout (debugging); "none": nothing leaves the process.
    exporter: Literal["none", "otlp", "console"] = "none"
    otlp_endpoint: str = "http://127.0.0.1:4317"
    otlp_insecure: bool = True
    export_timeout_s: float = Field(default=10.0, gt=0)
    # How long spans wait in the batch before they are sent.
    export_delay_ms: int = Field(default=1000, ge=1)
    # Share of new traces recorded; a trace started upstream keeps its caller's decision.
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``env_prefix`` and their own defaults."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    grpc_port: int = 0
    metrics_port: int = 0
    log_level: str = "INFO"
    log_json: bool = True
    # Seconds in-flight gRPC calls get to finish on SIGTERM.
    shutdown_grace_s: float = 5.0
    # Seconds in-flight Kafka handlers get to finish on SIGTERM before they are cancelled and
    # their records handed back (redelivered after the commit point).
    drain_timeout_s: float = 20.0
    # Wait for the broker to acknowledge each audit record before answering the request that
    # made it. Off: records are sent in order in the background and flushed on shutdown, which
    # takes ~1 ms of Kafka round trip off every audited call; a process killed with SIGKILL
    # can lose its last few milliseconds of records (see docs/guarantees.md).
    audit_sync: bool = False
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    trust: TrustSettings = Field(default_factory=TrustSettings)
