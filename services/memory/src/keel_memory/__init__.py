"""The memory service.

OpenBLAS (NumPy's BLAS, which MiniLM's matrix products run on) keeps its worker threads
busy-waiting for 2^28 cycles (~0.1 s) after every product before they sleep. The memory service
embeds a query or an episode now and then, so each embedding left a core spinning for longer
than the embedding took: measured, one 50-token embedding followed by idle cost 162 ms of CPU
instead of 26 ms, and in a one-session-at-a-time run the memory process burnt ~0.5 of the
machine's two cores while the agent's hops waited for one. ``OPENBLAS_THREAD_TIMEOUT=4`` (2^4
cycles) puts the workers to sleep at once; a burst's batches keep both threads (50 queries:
258 -> 266 ms). It must be set before NumPy is first imported, hence here, where every entry
point of the service (``python -m keel_memory``, the console script, tests) passes first. An
operator's own value wins.
"""

import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
