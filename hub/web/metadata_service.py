"""Device metadata in the dashboard and the API: the effective metadata of a device type or a
device with the layers it came from, an admin's edits (checked, stored, audited), what the edge
reported, and the asset hierarchy tree (site > area > line > machine) with device counts.

Precedence (hub.metadata.model): seed < edge < admin, and a device's layers over its type's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from hub.metadata.model import MetadataDoc, merge, parse_document
from hub.metadata.seed import seed_document, seed_types
from hub.storage.audit_model import Actor, AuditEvent
from hub.storage.metadata_store import MetadataEntry, MetadataStore, Scope, StoredSource
from hub.storage.web_model import DeviceFilter, DeviceView
from hub.storage.web_ports import AuditTrail, ReadModel
from hub.web.model import Principal, can_administer

__all__ = [
    "DeviceMetadataView",
    "HierarchyNode",
    "MetadataService",
    "hierarchy_tree",
    "place_of",
]

log = logging.getLogger("hub.web.metadata")

LEVELS: Final = ("site", "area", "line", "machine")
Place = tuple[str, str, str, str]  # site, area, line, machine ("" where unnamed)
_DEVICE_PAGE: Final = 1000
MAX_DEVICES_SCANNED: Final = 100_000
UNASSIGNED: Final = ""  # a level a device has no name for


@dataclass(frozen=True, slots=True)
class DeviceMetadataView:
    """The effective metadata of a type or device and each stored layer (seed not stored)."""

    scope: Scope
    key: str
    effective: MetadataDoc
    layers: dict[str, dict[str, Any]]  # source -> document, lowest precedence first

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "key": self.key,
            "effective": self.effective.to_json(),
            "layers": self.layers,
        }


@dataclass(slots=True)
class HierarchyNode:
    level: str  # site, area, line or machine
    name: str  # "" for devices with no name at this level
    devices: int = 0
    children: dict[str, HierarchyNode] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "name": self.name,
            "devices": self.devices,
            "children": [c.to_json() for _, c in sorted(self.children.items())],
        }


def place_of(site: str, doc: MetadataDoc) -> tuple[str, str, str, str]:
    return (site, doc.area or UNASSIGNED, doc.line or UNASSIGNED, doc.machine or UNASSIGNED)


async def all_devices(reads: ReadModel) -> list[DeviceView]:
    """Every device (up to MAX_DEVICES_SCANNED), page by page: a place filter needs them all."""
    devices: list[DeviceView] = []
    while len(devices) < MAX_DEVICES_SCANNED:
        page = await reads.devices(DeviceFilter(limit=_DEVICE_PAGE, offset=len(devices)))
        devices += page.items
        if len(page.items) < _DEVICE_PAGE:
            break
    return devices


def at_place(place: tuple[str, ...], wanted: tuple[str | None, ...]) -> bool:
    """Whether `place` is at or below `wanted` (None: any name at that level)."""
    return all(w is None or w == have for w, have in zip(wanted, place, strict=False))


PlaceFilter = tuple[str | None, str | None, str | None]  # area, line, machine; None: any


def place_key(place: PlaceFilter) -> str:
    """A select's key for an area/line/machine prefix ("all" for none)."""
    named = [level for level in place if level is not None]
    return "all" if not named else "p:" + "\x1f".join(named)


def place_choices(places: Iterable[Place]) -> dict[str, tuple[str, PlaceFilter]]:
    """Every area, line and machine path that holds a device: key -> (label, filter), sorted.
    A level without a name shows as "(none)" when a deeper one has a name."""
    found: set[PlaceFilter] = set()
    for _, area, line, machine in places:
        if area or line or machine:
            found.add((area, None, None))
        if line or machine:
            found.add((area, line, None))
        if machine:
            found.add((area, line, machine))
    choices = {}
    for place in sorted(found, key=lambda p: tuple(x or "" for x in p)):
        label = " > ".join((level or "(none)") for level in place if level is not None)
        choices[place_key(place)] = (label, place)
    return choices


def hierarchy_tree(places: Iterable[tuple[str, str, str, str]]) -> list[HierarchyNode]:
    """Sites > areas > lines > machines, each node counting the devices below it. Pure."""
    roots: dict[str, HierarchyNode] = {}
    for place in places:
        level_nodes = roots
        for level, name in zip(LEVELS, place, strict=True):
            node = level_nodes.setdefault(name, HierarchyNode(level, name))
            node.devices += 1
            level_nodes = node.children
    return [roots[k] for k in sorted(roots)]


def _require_admin(by: Principal) -> None:
    if not can_administer(by.role):
        raise PermissionError(f"role {by.role!r} may not edit device metadata; admin only")


def _layers(entries: list[MetadataEntry]) -> dict[str, dict[str, Any]]:
    by_source = {e.source: e.document for e in entries}
    return {s: by_source[s] for s in ("edge", "admin") if s in by_source}


class MetadataService:
    def __init__(self, store: MetadataStore, audit: AuditTrail) -> None:
        self._store = store
        self._audit = audit

    async def type_metadata(self, device_type: str) -> DeviceMetadataView:
        layers = _layers(await self._store.entries("type", device_type))
        docs = [seed_document(device_type)]
        docs += [parse_document(d, device=False) for d in layers.values()]
        return DeviceMetadataView("type", device_type, merge(docs), layers)

    async def device_metadata(self, device_id: str, device_type: str | None) -> DeviceMetadataView:
        type_view = await self.type_metadata(device_type or "")
        layers = _layers(await self._store.entries("device", device_id))
        docs = [type_view.effective] + [parse_document(d, device=True) for d in layers.values()]
        return DeviceMetadataView("device", device_id, merge(docs), layers)

    async def effective_many(self, devices: Iterable[DeviceView]) -> dict[str, MetadataDoc]:
        """The effective metadata of many devices in two reads (a list page's rows)."""
        by_type: dict[str, list[MetadataEntry]] = {}
        for entry in await self._store.entries("type"):
            by_type.setdefault(entry.key, []).append(entry)
        by_device: dict[str, list[MetadataEntry]] = {}
        for entry in await self._store.entries("device"):
            by_device.setdefault(entry.key, []).append(entry)
        out = {}
        for d in devices:
            type_layers = _layers(by_type.get(d.type or "", []))
            own_layers = _layers(by_device.get(d.device_id, []))
            out[d.device_id] = merge(
                [seed_document(d.type or "")]
                + [parse_document(doc, device=False) for doc in type_layers.values()]
                + [parse_document(doc, device=True) for doc in own_layers.values()]
            )
        return out

    async def known_types(self) -> list[str]:
        stored = {e.key for e in await self._store.entries("type")}
        return sorted(stored | set(seed_types()))

    async def device_documents(self) -> dict[str, MetadataDoc]:
        """Each device's own stored layers merged (no type layers: those carry no hierarchy)."""
        grouped: dict[str, list[MetadataEntry]] = {}
        for entry in await self._store.entries("device"):
            grouped.setdefault(entry.key, []).append(entry)
        return {
            key: merge([parse_document(d, device=True) for d in _layers(entries).values()])
            for key, entries in grouped.items()
        }

    async def places(self, devices: Iterable[DeviceView]) -> dict[str, Place]:
        docs = await self.device_documents()
        return {
            d.device_id: place_of(d.site, docs.get(d.device_id, MetadataDoc())) for d in devices
        }

    async def hierarchy(self, devices: Iterable[DeviceView]) -> list[HierarchyNode]:
        docs = await self.device_documents()
        return hierarchy_tree(
            place_of(d.site, docs.get(d.device_id, MetadataDoc())) for d in devices
        )

    async def edit(
        self,
        scope: Scope,
        key: str,
        raw: Any,
        by: Principal,
        client: str | None = None,
    ) -> DeviceMetadataView | None:
        """Store an admin's document for a type or device (replacing the previous admin
        document); ValueError naming the field, nothing stored, on bad input. The caller
        resolves a device's type: this returns None and the caller reads the view again."""
        _require_admin(by)
        try:
            doc = parse_document(raw, device=scope == "device")
        except ValueError as exc:
            await self._audit.record(
                AuditEvent(
                    Actor(by.name, client),
                    "metadata.edit",
                    outcome="failure",
                    target=f"{scope}:{key}",
                    details={"problem": str(exc)[:500]},
                )
            )
            raise
        await self._store.put(scope, key, "admin", doc.to_json(), by.name)
        log.info("metadata edited", extra={"scope": scope, "key": key, "by": by.name})
        await self._audit.record(
            AuditEvent(
                Actor(by.name, client),
                "metadata.edit",
                target=f"{scope}:{key}",
                details={"metrics": sorted(doc.metrics)[:50], "metric_count": len(doc.metrics)},
            )
        )
        return None

    async def reset(self, scope: Scope, key: str, by: Principal, client: str | None = None) -> bool:
        """Drop the admin document: the edge and seed layers apply again."""
        _require_admin(by)
        removed = await self._store.delete(scope, key, "admin")
        if removed:
            await self._audit.record(
                AuditEvent(Actor(by.name, client), "metadata.delete", target=f"{scope}:{key}")
            )
        return removed

    async def report(self, scope: Scope, key: str, raw: Any, source: StoredSource) -> None:
        """Store what a non-admin source reported (the edge); ValueError on bad input."""
        doc = parse_document(raw, device=scope == "device")
        await self._store.put(scope, key, source, doc.to_json(), source)
