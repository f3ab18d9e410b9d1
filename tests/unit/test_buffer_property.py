"""Random operation sequences: both adapters must agree with each other and with a naive model."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_gateway.buffer import (
    AppendResult,
    BufferRecord,
    BufferStats,
    MemoryBuffer,
    SqliteBuffer,
    StoredRecord,
)

MAX_BYTES = 200


@dataclass
class _Entry:
    id: int | None  # None until its batch is stored
    record: BufferRecord
    in_flight: bool = False


@dataclass
class NaiveBuffer:
    """The rules written the slow, obvious way: a list scanned from the front every time."""

    max_bytes: int
    entries: list[_Entry] = field(default_factory=list)
    next_id: int = 1
    appended: int = 0
    acked: int = 0
    dropped: int = 0

    def append(self, records: Sequence[BufferRecord]) -> AppendResult:
        dropped = 0
        while self._bytes() > self.max_bytes:
            victim = next((e for e in self.entries if not e.in_flight), None)
            if victim is None:
                break
            self.entries.remove(victim)
            dropped += 1
        for record in records:
            if record.size > self.max_bytes:
                dropped += 1
                continue
            new = _Entry(None, record)
            self.entries.append(new)
            while self._bytes() > self.max_bytes:
                victim = next((e for e in self.entries if not e.in_flight and e is not new), None)
                if victim is None:
                    break
                self.entries.remove(victim)
                dropped += 1
        for entry in self.entries:
            if entry.id is None:
                entry.id = self.next_id
                self.next_id += 1
        self.appended += len(records)
        self.dropped += dropped
        return AppendResult(appended=len(records), dropped=dropped)

    def lease(self, max_records: int, max_bytes: int | None) -> list[StoredRecord]:
        leased: list[StoredRecord] = []
        total = 0
        for entry in sorted(self.entries, key=lambda e: e.id or 0):
            if entry.in_flight:
                continue
            if len(leased) == max_records:
                break
            if max_bytes is not None and leased and total + entry.record.size > max_bytes:
                break
            entry.in_flight = True
            total += entry.record.size
            assert entry.id is not None
            leased.append(StoredRecord(entry.id, entry.record))
        return leased

    def ack(self, ids: Iterable[int]) -> int:
        wanted = set(ids)
        kept = [e for e in self.entries if e.id not in wanted]
        removed = len(self.entries) - len(kept)
        self.entries = kept
        self.acked += removed
        return removed

    def release(self, ids: Iterable[int]) -> None:
        wanted = set(ids)
        for entry in self.entries:
            if entry.id in wanted:
                entry.in_flight = False

    def stats(self) -> BufferStats:
        oldest = min(self.entries, key=lambda e: e.id or 0, default=None)
        return BufferStats(
            depth=len(self.entries),
            bytes=self._bytes(),
            in_flight=sum(e.in_flight for e in self.entries),
            oldest_created_ms=oldest.record.created_ms if oldest else None,
            appended_total=self.appended,
            acked_total=self.acked,
            dropped_total=self.dropped,
            max_bytes=self.max_bytes,
        )

    def _bytes(self) -> int:
        return sum(e.record.size for e in self.entries)


def random_record(rng: random.Random, serial: int) -> BufferRecord:
    # Mostly small, sometimes larger than the whole budget.
    size = rng.choice([rng.randint(0, 40), rng.randint(0, 40), rng.randint(40, 120), 250])
    headers: tuple[tuple[str, bytes], ...] = ()
    if rng.random() < 0.3:
        headers = (("error", rng.randbytes(rng.randint(0, 4))),)
    key = rng.choice([None, b"", b"dev-1"])
    return BufferRecord("t", key, rng.randbytes(size), serial, headers)


@pytest.mark.parametrize("seed", range(12))
def test_adapters_agree_with_the_naive_model(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    model = NaiveBuffer(MAX_BYTES)
    memory = MemoryBuffer(MAX_BYTES)
    sqlite = SqliteBuffer(tmp_path / "buffer.db", max_bytes=MAX_BYTES, synchronous="NORMAL")
    seen_ids: list[int] = []  # every id ever leased, to ack and release stale ones too
    in_flight: list[int] = []
    serial = 0
    try:
        for _ in range(400):
            operation = rng.choice(["append", "append", "lease", "lease", "ack", "release"])
            if operation == "append":
                records = []
                for _ in range(rng.randint(0, 6)):
                    serial += 1
                    records.append(random_record(rng, serial))
                expected: object = model.append(records)
                outcomes: list[object] = [memory.append(records), sqlite.append(records)]
            elif operation == "lease":
                max_records = rng.randint(1, 5)
                max_bytes = rng.choice([None, rng.randint(0, 150)])
                leased = model.lease(max_records, max_bytes)
                seen_ids.extend(s.id for s in leased)
                in_flight.extend(s.id for s in leased)
                expected = leased
                outcomes = [
                    memory.lease(max_records, max_bytes),
                    sqlite.lease(max_records, max_bytes),
                ]
            elif operation == "ack":
                ids = rng.sample(in_flight, k=min(len(in_flight), rng.randint(0, 6)))
                ids += rng.sample(seen_ids, k=min(len(seen_ids), rng.randint(0, 2)))
                ids.append(rng.randint(1, 10_000))
                in_flight = [i for i in in_flight if i not in ids]
                expected = model.ack(ids)
                outcomes = [memory.ack(ids), sqlite.ack(ids)]
            else:
                ids = rng.sample(in_flight, k=min(len(in_flight), rng.randint(0, 6)))
                ids += rng.sample(seen_ids, k=min(len(seen_ids), rng.randint(0, 2)))
                in_flight = [i for i in in_flight if i not in ids]
                model.release(ids)
                memory.release(ids)
                sqlite.release(ids)
                expected, outcomes = None, [None, None]
            assert outcomes == [expected, expected], operation
            model_stats = model.stats()
            assert memory.stats() == model_stats
            assert sqlite.stats() == model_stats
            assert model_stats.appended_total == (
                model_stats.depth + model_stats.acked_total + model_stats.dropped_total
            )
            if operation == "append":
                # Over budget by in-flight bytes only.
                in_flight_bytes = sum(e.record.size for e in model.entries if e.in_flight)
                assert model_stats.bytes - in_flight_bytes <= MAX_BYTES
    finally:
        memory.close()
        sqlite.close()

    # What is left is what a restart would deliver.
    with SqliteBuffer(tmp_path / "buffer.db", max_bytes=MAX_BYTES) as reopened:
        model.release(e.id for e in model.entries if e.id is not None)
        assert reopened.stats() == model.stats()
        assert reopened.lease(10_000) == model.lease(10_000, None)
