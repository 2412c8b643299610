"""The offline models Keel knows, and the check that a weights file is the one we pinned.

A GGUF file is code-like input to a C++ parser, so it is loaded only after its sha256 matches
the digest recorded here. The same digests live in ``deploy/models/models.json`` (used by
``deploy/models/fetch.py``, which must run before Keel is installed); a unit test keeps the
two in step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from keel_contracts.errors import FailedPrecondition

CHUNK = 8 << 20
FETCH_HINT = "python deploy/models/fetch.py --model {name}"


@dataclass(frozen=True)
class ModelFile:
    """A pinned weights file: its name in the cache, exact size and sha256."""

    name: str
    file: str
    size: int
    sha256: str
    # Qwen's chat format (ChatML with <tool_call> tags) is what the prompt module writes.
    family: str = "qwen2.5"


CATALOG: dict[str, ModelFile] = {
    "qwen2.5-coder-0.5b": ModelFile(
        name="qwen2.5-coder-0.5b",
        file="qwen2.5-coder-0.5b-instruct.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-coder-1.5b": ModelFile(
        name="qwen2.5-coder-1.5b",
        file="qwen2.5-coder-1.5b-instruct.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}


def catalog_entry(name: str) -> ModelFile:
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise FailedPrecondition(f"unknown local model {name!r}; known: {known}") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, sha256: str, *, name: str = "", size: int | None = None) -> None:
    """Raise ``FailedPrecondition`` unless ``path`` exists and has the expected size and digest.

    The size check is free and catches a truncated copy without hashing a gigabyte.
    """
    hint = f" (fetch it: {FETCH_HINT.format(name=name)})" if name else ""
    if not path.is_file():
        raise FailedPrecondition(f"local model file {path} does not exist{hint}")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise FailedPrecondition(
            f"local model file {path} has {actual_size} bytes, expected {size}; "
            f"refusing to load it{hint}"
        )
    if sha256:
        actual = sha256_of(path)
        if actual != sha256.lower():
            raise FailedPrecondition(
                f"local model file {path} has sha256 {actual}, expected {sha256.lower()}; "
                f"refusing to load it (delete it and fetch again){hint}"
            )
