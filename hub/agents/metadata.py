"""Device metadata from the edge (`iot.device-metadata`, protocol.device_metadata): each report
becomes the device's *edge* layer in the metadata store (hub.storage.metadata_store), replacing
the one before; an admin's edits still win over it (hub.metadata.model). The newest report of a
device in a batch is stored. A record that does not decode, or whose metadata the hub's model
refuses (a range with min > max...), goes to the hub's dead-letter topic with its reason.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from hub.agents.poison import isolate_poison
from hub.agents.records import DeadLetters, DeadLetterSink, TsBound, decode_timestamped
from hub.agents.retry import Retrier, is_record_error
from hub.metadata.model import parse_document
from hub.storage.metadata_store import MetadataStore
from protocol.device_metadata import DeviceMetadataReport

log = logging.getLogger(__name__)


@dataclass
class MetadataCounters:
    reports_total: int = 0
    stored_total: int = 0
    dead_lettered_total: int = 0


async def handle_device_metadata(
    raw_values: Sequence[bytes],
    *,
    store: MetadataStore,
    dlq: DeadLetterSink,
    counters: MetadataCounters,
    retrier: Retrier,
    bound: TsBound | None = None,
) -> None:
    decoded, invalid = decode_timestamped(raw_values, DeviceMetadataReport, bound or TsBound())
    checked = []
    for raw, report in decoded:
        try:
            document = parse_document(report.document(), device=True).to_json()
        except ValueError as exc:
            invalid.append((raw, f"invalid_metadata: {exc}"[:500]))
            continue
        checked.append((raw, report, document))
    dead_letters = DeadLetters(dlq, retrier)
    await dead_letters.send(invalid, what="undecodable_device_metadata")
    counters.dead_lettered_total += len(invalid)
    counters.reports_total += len(decoded)

    newest: dict[str, tuple[bytes, DeviceMetadataReport, dict[str, object]]] = {}
    for item in checked:
        seen = newest.get(item[1].device_id)
        if seen is None or item[1].ts >= seen[1].ts:
            newest[item[1].device_id] = item
    documents = {id(report): document for _, report, document in newest.values()}

    async def process(chunk: Sequence[tuple[bytes, DeviceMetadataReport]]) -> None:
        for _, report in chunk:
            await retrier.db(
                functools.partial(
                    store.put,
                    "device",
                    report.device_id,
                    "edge",
                    documents[id(report)],
                    f"{report.source}@{report.gateway_id}",
                ),
                what="device_metadata_write",
                extra={"device_id": report.device_id, "gateway_id": report.gateway_id},
            )
            counters.stored_total += 1
            log.info(
                "device_metadata_stored",
                extra={
                    "device_id": report.device_id,
                    "gateway_id": report.gateway_id,
                    "source": report.source,
                    "metrics": len(report.metrics),
                },
            )

    poison = await isolate_poison(
        [(raw, report) for raw, report, _ in newest.values()], process, is_poison=is_record_error
    )
    await dead_letters.send_poison(poison, what="device_metadata")
    counters.dead_lettered_total += len(poison)
