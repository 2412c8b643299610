"""The mock OpenAI-compatible upstream as a process of its own, for bench/llm_gateway.py.

Usage: python bench/llm_gateway_mock.py PORT  (prints "ready" when listening).
"""

from __future__ import annotations

import asyncio
import sys

from keel_llm_gateway.testing import MockOpenAIUpstream


async def main(port: int) -> None:
    upstream = MockOpenAIUpstream(reply_text="The answer is 395.", record=False)
    await upstream.start(port=port)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
