"""Generate the Python gRPC code and type stubs from proto/ into libs/protos/src.

Run via ``make protos``. ``tests/contract/test_generated_code.py`` regenerates into a temporary
folder and fails on any difference, so checked-in code can never drift from the contracts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
DEFAULT_OUT = Path(__file__).resolve().parent / "src"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.glob("keel/*/v1/*.proto"))


def generate(out_dir: Path) -> None:
    """Run protoc with the grpc and mypy-protobuf plugins; raise on any protoc error."""
    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    # mypy-protobuf's plugins live beside this interpreter, which may not be on PATH.
    bin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(str(p.relative_to(PROTO_ROOT)) for p in proto_files()),
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
