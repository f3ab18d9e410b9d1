"""Write the EDGE_CONNECTORS_FILE JSON Schema: `python -m edge_gateway.connectors.schema [PATH]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edge_gateway.connectors.config import json_schema

SCHEMA_PATH = Path("docs/connectors.schema.json")


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else SCHEMA_PATH
    path.write_text(render())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
