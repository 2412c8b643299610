"""The memory service's process does not leave BLAS threads spinning after an embedding
(``keel_memory/__init__.py``): measured as the CPU the process burns while it sleeps right
after a multi-threaded matrix product. Spinning threads can only make that number larger, so a
busy machine cannot make this pass wrongly or fail it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

IDLE_CPU_AFTER_A_PRODUCT = """
import time
import {first}
import numpy as np
a = np.ones((512, 384), np.float32)
b = np.ones((384, 1536), np.float32)
for _ in range(5):
    a @ b
start = time.process_time()
time.sleep(0.5)
print(time.process_time() - start)
"""


def _idle_cpu_after_a_product(first_import: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS", "OMP_"))}
    out = subprocess.run(
        [sys.executable, "-c", IDLE_CPU_AFTER_A_PRODUCT.format(first=first_import)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    )
    return float(out.stdout.strip())


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="BLAS runs one thread on one core")
def test_blas_threads_sleep_once_a_product_is_done() -> None:
    assert _idle_cpu_after_a_product("keel_memory") < 0.05
