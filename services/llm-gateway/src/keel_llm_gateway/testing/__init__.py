"""Test doubles for the gateway, shipped with it (tests, benchmarks and other services' tests
use them): a scriptable provider and a mock OpenAI-compatible HTTP upstream."""

from keel_llm_gateway.testing.fake_provider import FakeProvider as FakeProvider
from keel_llm_gateway.testing.fake_provider import text_completion as text_completion
from keel_llm_gateway.testing.mock_upstream import MockOpenAIUpstream as MockOpenAIUpstream
