"""Durable store-and-forward buffer between the bridge and the Kafka forwarder.

The bridge appends encoded Kafka records; the forwarder leases the oldest ones in batches,
produces them and acks them once Kafka has (``acks=all``), or releases them to retry in the same
order. A full buffer drops its oldest pending records and counts every drop.

``Buffer`` is the port; ``SqliteBuffer`` (durable) and ``MemoryBuffer`` (tests) are its adapters,
both built on ``BufferAccounting``, the sans-I/O core that holds the rules.
"""

from edge_gateway.buffer._accounting import BufferAccounting
from edge_gateway.buffer._memory import MemoryBuffer
from edge_gateway.buffer._model import AppendResult, BufferRecord, BufferStats, StoredRecord
from edge_gateway.buffer._port import Buffer
from edge_gateway.buffer._sqlite import SqliteBuffer

__all__ = [
    "AppendResult",
    "Buffer",
    "BufferAccounting",
    "BufferRecord",
    "BufferStats",
    "MemoryBuffer",
    "SqliteBuffer",
    "StoredRecord",
]
