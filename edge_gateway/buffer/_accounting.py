"""Sans-I/O bookkeeping of the buffer: order, leases, byte budget and totals.

No storage, no clock, no locks. The adapters own the payloads and call this class under their
own lock; every rule about what is pending, in flight, dropped or acknowledged lives here.

Changes that must also reach storage are split in two steps: ``plan_*`` decides without changing
anything, the adapter writes the plan in one transaction, then ``commit_*`` applies it. A failed
transaction therefore leaves the accounting untouched: the adapter just discards the plan.

Layout: one slot per stored record, in id order, in parallel compact arrays (about 25 bytes per
record, so millions of records cost tens of MB rather than the hundreds a dict of objects would).
Acked and dropped slots become tombstones until the head of the arrays passes them, when they
are cut off in bulk.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edge_gateway.buffer._model import AppendResult, BufferStats

_PENDING = 0
_IN_FLIGHT = 1
_GONE = 2

# Cut tombstones off the front once there are this many and they are half of the arrays, so the
# memmove is amortised over at least as many removals as it moves.
_COMPACT_MIN_SLOTS = 4096


@dataclass(frozen=True, slots=True)
class AppendPlan:
    """What an append has to write: delete ``drop_ids``, store the batch records at ``keep``."""

    drop_ids: tuple[int, ...]  # stored records to delete, oldest first
    keep: tuple[int, ...]  # indices into the batch of the records to store, in order
    result: AppendResult
    _drop_slots: tuple[int, ...] = field(repr=False)
    _kept: tuple[tuple[int, int], ...] = field(repr=False)  # (size, created_ms) per kept record
    _version: int = field(repr=False)
    _in_bytes: int = field(default=0, repr=False)  # every record of the batch, dropped or kept


@dataclass(frozen=True, slots=True)
class AckPlan:
    """What an ack has to write: delete ``ids`` (stored ones only, without duplicates)."""

    ids: tuple[int, ...]
    _slots: tuple[int, ...] = field(repr=False)
    _version: int = field(repr=False)


class BufferAccounting:
    """Pending order, in-flight set, byte budget and running totals of one buffer.

    Not thread-safe: adapters serialise calls. Record ids are chosen by the adapter and must
    increase strictly; they define "oldest first".
    """

    def __init__(
        self,
        max_bytes: int,
        *,
        appended_total: int = 0,
        acked_total: int = 0,
        dropped_total: int = 0,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        if min(appended_total, acked_total, dropped_total) < 0:
            raise ValueError("totals must not be negative")
        self._max_bytes = max_bytes
        self._ids = array("q")
        self._sizes = array("q")
        self._created = array("q")
        self._state = bytearray()
        self._head = 0  # every slot before it is gone; the head slot is the oldest stored record
        self._cursor = 0  # no pending slot before it
        self._last_id: int | None = None
        self._depth = 0
        self._bytes = 0
        self._in_flight = 0
        self._in_flight_bytes = 0
        self._appended_total = appended_total
        self._acked_total = acked_total
        self._dropped_total = dropped_total
        # Byte flows since this accounting was made (not restored): the runway's rates.
        self._appended_bytes_total = 0
        self._acked_bytes_total = 0
        # Bumped by every change, so a plan made against an older state is refused.
        self._version = 0

    # -- queries -----------------------------------------------------------------------------

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def pending(self) -> int:
        return self._depth - self._in_flight

    @property
    def in_flight_bytes(self) -> int:
        return self._in_flight_bytes

    def stats(self) -> BufferStats:
        return BufferStats(
            depth=self._depth,
            bytes=self._bytes,
            in_flight=self._in_flight,
            oldest_created_ms=self._created[self._head] if self._depth else None,
            appended_total=self._appended_total,
            acked_total=self._acked_total,
            dropped_total=self._dropped_total,
            max_bytes=self._max_bytes,
            appended_bytes_total=self._appended_bytes_total,
            acked_bytes_total=self._acked_bytes_total,
        )

    # -- loading -----------------------------------------------------------------------------

    def restore(self, entries: Iterable[tuple[int, int, int]]) -> None:
        """Load stored records ``(id, size, created_ms)`` in id order, all pending.

        Used when reopening a durable buffer; they are not counted as appended again. A budget
        lowered since they were stored is enforced by the next append.
        """
        ids, sizes, created, state = self._ids, self._sizes, self._created, self._state
        last = self._last_id
        added = added_bytes = 0
        for record_id, size, created_ms in entries:
            if last is not None and record_id <= last:
                raise ValueError(f"ids must increase: {record_id} after {last}")
            if size < 0:
                raise ValueError(f"size must not be negative, got {size}")
            ids.append(record_id)
            sizes.append(size)
            created.append(created_ms)
            state.append(_PENDING)
            last = record_id
            added += 1
            added_bytes += size
        self._last_id = last
        self._depth += added
        self._bytes += added_bytes
        self._version += 1

    # -- append ------------------------------------------------------------------------------

    def plan_append(self, entries: Sequence[tuple[int, int]]) -> AppendPlan:
        """Decide what storing a batch of ``(size, created_ms)`` entries drops; changes nothing.

        Records are taken in order. One larger than the whole budget is dropped itself. For the
        others, the oldest records not in flight are dropped until the new one fits: stored ones
        first, then earlier records of the same batch. If only in-flight bytes are left in the
        way the record is kept anyway: they are about to be acked, so the budget is exceeded by
        in-flight bytes at most.

        A buffer already over budget (records released after in-flight bytes pushed it over, or
        a budget lowered since a restart) first drops its oldest pending records to get within.
        """
        max_bytes = self._max_bytes
        ids, sizes, state = self._ids, self._sizes, self._state
        total = self._bytes
        drop_slots: list[int] = []
        scan = self._cursor
        while total > max_bytes and scan >= 0:
            scan = state.find(_PENDING, scan)
            if scan >= 0:
                drop_slots.append(scan)
                total -= sizes[scan]
                scan += 1
        kept: deque[int] = deque()
        dropped_new = 0
        for index, (size, _created_ms) in enumerate(entries):
            if size < 0:
                raise ValueError(f"size must not be negative, got {size}")
            if size > max_bytes:
                dropped_new += 1
                continue
            while total + size > max_bytes:
                if scan >= 0:
                    scan = state.find(_PENDING, scan)
                if scan >= 0:
                    drop_slots.append(scan)
                    total -= sizes[scan]
                    scan += 1
                elif kept:
                    total -= entries[kept.popleft()][0]
                    dropped_new += 1
                else:
                    break
            kept.append(index)
            total += size
        return AppendPlan(
            drop_ids=tuple(ids[slot] for slot in drop_slots),
            keep=tuple(kept),
            result=AppendResult(appended=len(entries), dropped=len(drop_slots) + dropped_new),
            _drop_slots=tuple(drop_slots),
            _kept=tuple((entries[index][0], entries[index][1]) for index in kept),
            _version=self._version,
            _in_bytes=sum(size for size, _created_ms in entries),
        )

    def commit_append(self, plan: AppendPlan, ids: Sequence[int]) -> AppendResult:
        """Apply a plan once stored; ``ids`` are the new records' ids, one per ``plan.keep``."""
        self._check_version(plan._version)
        if len(ids) != len(plan.keep):
            raise ValueError(f"expected {len(plan.keep)} ids, got {len(ids)}")
        last = self._last_id
        for record_id in ids:
            if last is not None and record_id <= last:
                raise ValueError(f"ids must increase: {record_id} after {last}")
            last = record_id
        for slot in plan._drop_slots:
            self._remove(slot)
        if plan._drop_slots:
            # The dropped records were the oldest pending ones.
            self._cursor = max(self._cursor, plan._drop_slots[-1] + 1)
        added_bytes = 0
        for record_id, (size, created_ms) in zip(ids, plan._kept, strict=True):
            self._ids.append(record_id)
            self._sizes.append(size)
            self._created.append(created_ms)
            self._state.append(_PENDING)
            added_bytes += size
        self._last_id = last
        self._depth += len(ids)
        self._bytes += added_bytes
        self._appended_total += plan.result.appended
        self._appended_bytes_total += plan._in_bytes
        self._dropped_total += plan.result.dropped
        self._advance_head()
        self._version += 1
        return plan.result

    # -- lease and release -------------------------------------------------------------------

    def lease(self, max_records: int, max_bytes: int | None = None) -> list[int]:
        """Mark the oldest pending records in flight and return their ids, oldest first.

        Stops before the first record that would exceed ``max_bytes``, except that one record is
        always returned if any is pending, so an oversize record cannot block the queue.
        """
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        ids, sizes, state = self._ids, self._sizes, self._state
        leased: list[int] = []
        total = 0
        slot = self._cursor
        while len(leased) < max_records:
            slot = state.find(_PENDING, slot)
            if slot < 0:
                slot = len(state)
                break
            size = sizes[slot]
            if max_bytes is not None and leased and total + size > max_bytes:
                break
            state[slot] = _IN_FLIGHT
            leased.append(ids[slot])
            total += size
            slot += 1
        self._cursor = slot
        if leased:
            self._in_flight += len(leased)
            self._in_flight_bytes += total
            self._version += 1
        return leased

    def release(self, ids: Iterable[int]) -> int:
        """Put in-flight records back to pending in their original place; return how many.

        Ids not in flight (unknown, pending, acked or dropped) are ignored.
        """
        state, sizes = self._state, self._sizes
        released = 0
        for record_id in ids:
            slot = self._slot(record_id)
            if slot is None or state[slot] != _IN_FLIGHT:
                continue
            state[slot] = _PENDING
            self._in_flight -= 1
            self._in_flight_bytes -= sizes[slot]
            self._cursor = min(self._cursor, slot)
            released += 1
        if released:
            self._version += 1
        return released

    def release_all(self) -> int:
        """Put every in-flight record back to pending (e.g. when the forwarder restarts)."""
        state = self._state
        released = 0
        slot = state.find(_IN_FLIGHT, self._head)
        if slot >= 0:
            self._cursor = min(self._cursor, slot)
        while slot >= 0:
            state[slot] = _PENDING
            released += 1
            slot = state.find(_IN_FLIGHT, slot + 1)
        self._in_flight = 0
        self._in_flight_bytes = 0
        if released:
            self._version += 1
        return released

    # -- ack ---------------------------------------------------------------------------------

    def plan_ack(self, ids: Iterable[int]) -> AckPlan:
        """Select the stored records among ``ids``; changes nothing.

        In-flight and pending records both count as stored: Kafka has what was acked either way.
        Unknown, dropped and already acked ids are left out, so nothing is counted twice.
        """
        slots: dict[int, int] = {}
        for record_id in ids:
            if record_id in slots:
                continue
            slot = self._slot(record_id)
            if slot is not None:
                slots[record_id] = slot
        return AckPlan(ids=tuple(slots), _slots=tuple(slots.values()), _version=self._version)

    def commit_ack(self, plan: AckPlan) -> int:
        """Apply an ack plan once deleted from storage; return how many records it removed."""
        self._check_version(plan._version)
        for slot in plan._slots:
            self._acked_bytes_total += self._sizes[slot]
            self._remove(slot)
        self._acked_total += len(plan._slots)
        self._advance_head()
        self._version += 1
        return len(plan._slots)

    # -- internals ---------------------------------------------------------------------------

    def _check_version(self, version: int) -> None:
        if version != self._version:
            raise RuntimeError("stale plan: the accounting changed after the plan was made")

    def _slot(self, record_id: int) -> int | None:
        """Slot of a stored (pending or in-flight) record, or None."""
        ids = self._ids
        head, end = self._head, len(ids)
        if head >= end:
            return None
        # Ids are usually consecutive, so try the direct offset before bisecting.
        slot = head + (record_id - ids[head])
        if not (head <= slot < end and ids[slot] == record_id):
            slot = bisect_left(ids, record_id, head)
            if slot >= end or ids[slot] != record_id:
                return None
        if self._state[slot] == _GONE:
            return None
        return slot

    def _remove(self, slot: int) -> None:
        size = self._sizes[slot]
        if self._state[slot] == _IN_FLIGHT:
            self._in_flight -= 1
            self._in_flight_bytes -= size
        self._state[slot] = _GONE
        self._depth -= 1
        self._bytes -= size

    def _advance_head(self) -> None:
        state = self._state
        end = len(state)
        head = self._head
        while head < end and state[head] == _GONE:
            head += 1
        if head >= _COMPACT_MIN_SLOTS and 2 * head >= end:
            del self._ids[:head]
            del self._sizes[:head]
            del self._created[:head]
            del state[:head]
            self._cursor = max(0, self._cursor - head)
            head = 0
        self._head = head
