"""Export the JSON Schemas for integrators, the devices' payloads and the values gateways write
to `iot.telemetry` (either version): `python -m protocol.schema [DIR]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from protocol.device_metadata import DeviceMetadataReport
from protocol.models import DevicePayload, NormalisedReading, StatusPayload, TelemetryBatch

DRAFT = "https://json-schema.org/draft/2020-12/schema"
TelemetryValue = Annotated[
    NormalisedReading | TelemetryBatch,
    Field(
        title="KafkaTelemetryValue",
        description="Value of a record on iot.telemetry, keyed by device_id: version 1 (one "
        "reading) or version 2 (several readings of that device, oldest first). Hubs read "
        "both; gateways write version EDGE_KAFKA_VALUE_VERSION.",
    ),
]
SCHEMAS: dict[str, Any] = {
    "device-telemetry.schema.json": DevicePayload,
    "device-status.schema.json": StatusPayload,
    "kafka-telemetry.schema.json": TelemetryValue,
    "kafka-device-metadata.schema.json": DeviceMetadataReport,
}


def render(model: Any) -> str:
    schema = {"$schema": DRAFT, **TypeAdapter(model).json_schema()}
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
