"""In-process fakes of every Keel gRPC service, for tests of the code that calls them.

Serve them with ``serving(...)`` and point the real clients (or a service's settings) at the
target it yields; each fake keeps what it was asked, for the test's assertions.
"""

from keel_clients.testing.approval import FakeApprovalService
from keel_clients.testing.llm import FakeLLMGateway, LLMRequest, text
from keel_clients.testing.memory import FakeMemoryService
from keel_clients.testing.policy import Evaluation, FakePolicyService
from keel_clients.testing.server import serving
from keel_clients.testing.tools import ExecuteCall, FakeToolGateway, echo

__all__ = [
    "Evaluation",
    "ExecuteCall",
    "FakeApprovalService",
    "FakeLLMGateway",
    "FakeMemoryService",
    "FakePolicyService",
    "FakeToolGateway",
    "LLMRequest",
    "echo",
    "serving",
    "text",
]
