"""Read a ``.safetensors`` file into NumPy arrays without the torch or safetensors packages.

The format is small enough to read directly: 8 bytes little-endian header length, a JSON header
mapping each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative
to the end of the header), then the raw little-endian tensor bytes. The file is memory-mapped, so
tensors that are only read (embedding tables) cost no private memory.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

_DTYPES: dict[str, str] = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
# A header larger than this is not a model we ship; refuse it rather than read gigabytes of JSON.
_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """The file is not a well-formed safetensors file."""


def load(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    """Every tensor of ``path`` by name, as read-only arrays backed by a memory map."""
    with path.open("rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if len(mapped) < 8:
        raise SafetensorsError(f"{path}: too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", mapped[:8])
    if header_len > min(_MAX_HEADER, len(mapped) - 8):
        raise SafetensorsError(f"{path}: header length {header_len} is out of range")
    header = json.loads(mapped[8 : 8 + header_len])
    base = 8 + header_len
    tensors: dict[str, npt.NDArray[np.generic]] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        tensors[name] = _tensor(mapped, base, name, spec)
    return tensors


def _tensor(
    buffer: mmap.mmap, base: int, name: str, spec: dict[str, object]
) -> npt.NDArray[np.generic]:
    dtype_name = str(spec["dtype"])
    if dtype_name not in _DTYPES:
        raise SafetensorsError(f"tensor {name!r}: unsupported dtype {dtype_name}")
    dtype = np.dtype(_DTYPES[dtype_name])
    shape = tuple(int(n) for n in spec["shape"])  # type: ignore[attr-defined]
    begin, end = (int(n) for n in spec["data_offsets"])  # type: ignore[attr-defined]
    count = int(np.prod(shape, dtype=np.int64))
    if end - begin != count * dtype.itemsize or base + end > len(buffer):
        raise SafetensorsError(f"tensor {name!r}: data offsets do not match its shape")
    return np.frombuffer(buffer, dtype=dtype, count=count, offset=base + begin).reshape(shape)
