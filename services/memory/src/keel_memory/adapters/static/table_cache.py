"""The distilled table, cached outside git and rebuilt when it cannot be trusted.

Distillation takes ~40 s, so it runs once per machine: ``make install`` runs it (``python -m
keel_memory.adapters.static``) and a service that finds no table distils it at start with a log
line saying so. The file lives under ``~/.cache/keel/static-embeddings/`` (``cache_dir``), named
by a key: the SHA-256 of the model's weights, tokenizer and config plus ``distill.VERSION``. A
new model or a new recipe therefore gets a new file; an old one is never read for it.

The file is an ``.npz`` holding the table and the key it was made for. A file that cannot be
read, holds another key or a table of the wrong shape or with non-finite values (a truncated
copy, a hand-edited file) is distilled again and replaced, with a warning, rather than trusted:
a wrong table would not fail, it would retrieve nonsense. Writes go to a temporary file renamed
into place, so a process reading the cache never sees half a table.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from keel_memory.adapters.static import distill

log = logging.getLogger(__name__)

Table = npt.NDArray[np.float32]
Distil = Callable[[Path], Table]

# The files of a model folder that the table depends on.
SOURCE_FILES = ("config.json", "tokenizer.json", "model.safetensors")


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "keel" / "static-embeddings"


def source_key(model_dir: Path, version: int = distill.VERSION) -> str:
    """What the table is a function of: the model's files and the recipe's version."""
    digest = hashlib.sha256(f"keel-static-embeddings v{version}\n".encode())
    for name in SOURCE_FILES:
        with (model_dir / name).open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:24]


def table_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"minilm-static-v{distill.VERSION}-{key}.npz"


def load_table(
    model_dir: Path,
    shape: tuple[int, int],
    cache_dir: Path | None = None,
    *,
    distil: Distil = distill.distil,
) -> tuple[Table, Path]:
    """The table for ``model_dir`` (``shape``: vocabulary size, dimensions) and its file: read
    from the cache when it holds a sound one, else distilled and written there."""
    folder = cache_dir or default_cache_dir()
    key = source_key(model_dir)
    path = table_path(folder, key)
    if path.is_file():
        problem, table = _read(path, key, shape)
        if table is not None:
            return table, path
        log.warning("static embedding table %s %s: distilling it again", path, problem)
    else:
        log.info(
            "no static embedding table at %s: distilling it from MiniLM once (~40 s on 2 cores; "
            "`make install` does this ahead of time)",
            path,
        )
    started = time.perf_counter()
    table = np.ascontiguousarray(distil(model_dir), dtype=np.float32)
    problem = _check(table, shape)
    if problem:
        raise ValueError(f"the distilled table {problem}")
    log.info("distilled the static embedding table in %.1f s", time.perf_counter() - started)
    _write(path, key, table)
    return table, path


def _read(path: Path, key: str, shape: tuple[int, int]) -> tuple[str, Table | None]:
    """(what is wrong, None) or ("", the table)."""
    try:
        # Opened here, not by np.load, which leaks its handle when the zip is broken.
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as stored:
            found_key = str(stored["key"])
            table = np.ascontiguousarray(stored["table"], dtype=np.float32)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        return f"cannot be read ({exc})", None
    if found_key != key:
        return f"was made for {found_key}, not {key}", None
    problem = _check(table, shape)
    return (problem, None) if problem else ("", table)


def _check(table: Table, shape: tuple[int, int]) -> str:
    if table.shape != shape:
        return f"has shape {table.shape}, expected {shape}"
    if not np.isfinite(table).all():
        return "holds values that are not finite"
    return ""


def _write(path: Path, key: str, table: Table) -> None:
    """Atomically; a cache that cannot be written costs a distillation next start, not this
    one, so it is a warning."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
            np.savez(handle, key=np.array(key), table=table)
        os.chmod(handle.name, 0o644)  # a cache other users of the machine may read
        os.replace(handle.name, path)
    except OSError as exc:
        log.warning("cannot cache the static embedding table at %s: %s", path, exc)
