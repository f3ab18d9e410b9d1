"""The seed layer of the metadata (the lowest precedence): the packaged device types of
hub/metadata/device_types.yaml, which tests/unit/test_metadata.py holds equal to the simulators'
catalogue (edge_gateway/simulators/catalog.py) in units and normal ranges."""

from __future__ import annotations

from functools import cache

from hub.metadata import device_types
from hub.metadata.model import MetadataDoc, MetricMeta

__all__ = ["seed_document", "seed_types"]


@cache
def seed_document(device_type: str) -> MetadataDoc:
    """The seed of one device type; an empty document for a type the package does not know."""
    known = device_types().get(device_type)
    if known is None:
        return MetadataDoc()
    metrics = {
        name: MetricMeta(
            display_name=info.display_name,
            unit=info.unit or None,
            normal=None if info.kind == "flag" else (info.low, info.high),
        )
        for name, info in known.metrics.items()
    }
    return MetadataDoc(metrics=metrics)


def seed_types() -> list[str]:
    return sorted(device_types())
