"""One typed async client per Keel gRPC contract.

Each client does, exactly once for every caller: the deadline, the caller's credentials and
trace in the metadata, a client span, the mapping of ``keel_contracts`` types to and from
protobuf, and failed statuses turned into ``keel_contracts.errors`` types. Clients own no
channel: open one with ``open_channel`` and close it when done. ``keel_clients.testing`` has
in-process fakes of every service for tests.
"""

from keel_clients.agent import AgentClient
from keel_clients.approval import ApprovalClient
from keel_clients.call import CallOptions
from keel_clients.channel import open_channel
from keel_clients.health import HealthClient
from keel_clients.llm import CompletionOptions, LLMClient, StreamedText
from keel_clients.memory import MemoryClient
from keel_clients.policy import PolicyClient
from keel_clients.tools import ToolClient
from keel_core.grpc.client import ClientCredentials

__all__ = [
    "AgentClient",
    "ApprovalClient",
    "CallOptions",
    "ClientCredentials",
    "CompletionOptions",
    "HealthClient",
    "LLMClient",
    "MemoryClient",
    "PolicyClient",
    "StreamedText",
    "ToolClient",
    "open_channel",
]
