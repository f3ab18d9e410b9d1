"""Export the device-facing JSON Schemas for integrators: `python -m protocol.schema [DIR]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import BaseModel

from protocol.models import DevicePayload, StatusPayload

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMAS: dict[str, type[BaseModel]] = {
    "device-telemetry.schema.json": DevicePayload,
    "device-status.schema.json": StatusPayload,
}


def render(model: type[BaseModel]) -> str:
    schema = {"$schema": DRAFT, **model.model_json_schema()}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", nargs="?", default="docs", type=Path)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, model in SCHEMAS.items():
        path = args.out_dir / name
        path.write_text(render(model))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
