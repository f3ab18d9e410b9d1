"""Regenerate sparkplug_b_pb2.py (and its .pyi) from sparkplug_b.proto with grpcio-tools' protoc
(a dev-only dependency): `python -m edge_gateway.sparkplug.generate [OUT_DIR]`."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "sparkplug_b.proto"


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc  # dev-only: the gateway imports the committed module

    args = ["protoc", f"-I{HERE}", f"--python_out={out_dir}", f"--pyi_out={out_dir}", PROTO]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {HERE / PROTO}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
