"""BufferAccounting on its own: the buffer rules without storage."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from edge_gateway.buffer import AppendResult, BufferAccounting, BufferStats


def append(
    accounting: BufferAccounting, sizes: Sequence[int], first_id: int
) -> tuple[AppendResult, tuple[int, ...], list[int]]:
    """Plan and commit like an adapter; new ids count up from ``first_id``."""
    plan = accounting.plan_append([(size, 100 + first_id + i) for i, size in enumerate(sizes)])
    new_ids = list(range(first_id, first_id + len(plan.keep)))
    result = accounting.commit_append(plan, new_ids)
    return result, plan.drop_ids, new_ids


def ack(accounting: BufferAccounting, ids: list[int]) -> int:
    return accounting.commit_ack(accounting.plan_ack(ids))


def test_new_accounting_is_empty() -> None:
    accounting = BufferAccounting(100, appended_total=7, acked_total=5, dropped_total=2)
    assert accounting.stats() == BufferStats(
        depth=0,
        bytes=0,
        in_flight=0,
        oldest_created_ms=None,
        appended_total=7,
        acked_total=5,
        dropped_total=2,
        max_bytes=100,
    )
    assert accounting.lease(10) == []


def test_rejects_invalid_budget() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        BufferAccounting(0)


def test_planning_changes_nothing() -> None:
    accounting = BufferAccounting(30)
    append(accounting, [10, 10, 10], first_id=1)
    before = accounting.stats()
    plan = accounting.plan_append([(10, 0), (10, 0)])
    assert plan.drop_ids == (1, 2)
    assert plan.keep == (0, 1)
    assert plan.result == AppendResult(appended=2, dropped=2)
    ack_plan = accounting.plan_ack([1, 2, 3])
    assert ack_plan.ids == (1, 2, 3)
    assert accounting.stats() == before
    assert accounting.lease(10) == [1, 2, 3]


def test_a_stale_plan_is_refused() -> None:
    accounting = BufferAccounting(100)
    append(accounting, [10], first_id=1)
    stale = accounting.plan_append([(10, 0)])
    stale_ack = accounting.plan_ack([1])
    accounting.lease(1)
    with pytest.raises(RuntimeError, match="stale"):
        accounting.commit_append(stale, [2])
    with pytest.raises(RuntimeError, match="stale"):
        accounting.commit_ack(stale_ack)
    assert accounting.stats().depth == 1


def test_commit_checks_the_ids() -> None:
    accounting = BufferAccounting(100)
    append(accounting, [10], first_id=5)
    plan = accounting.plan_append([(10, 0), (10, 0)])
    with pytest.raises(ValueError, match="expected 2 ids"):
        accounting.commit_append(plan, [6])
    with pytest.raises(ValueError, match="ids must increase"):
        accounting.commit_append(plan, [5, 6])
    with pytest.raises(ValueError, match="ids must increase"):
        accounting.commit_append(plan, [7, 7])
    assert accounting.commit_append(plan, [6, 9]) == AppendResult(appended=2, dropped=0)
    assert accounting.lease(10) == [5, 6, 9]


def test_stats_follow_every_step() -> None:
    accounting = BufferAccounting(100)
    append(accounting, [10, 20, 30], first_id=1)
    assert accounting.stats() == BufferStats(3, 60, 0, 101, 3, 0, 0, 100)
    assert accounting.lease(2) == [1, 2]
    assert accounting.stats() == BufferStats(3, 60, 2, 101, 3, 0, 0, 100)
    assert accounting.pending == 1
    assert accounting.in_flight_bytes == 30
    assert ack(accounting, [1]) == 1
    assert accounting.stats() == BufferStats(2, 50, 1, 102, 3, 1, 0, 100)
    assert accounting.release([2]) == 1
    assert accounting.stats() == BufferStats(2, 50, 0, 102, 3, 1, 0, 100)
    append(accounting, [60], first_id=4)  # drops 2 (20 bytes): 30 + 60 fits
    assert accounting.stats() == BufferStats(2, 90, 0, 103, 4, 1, 1, 100)


def test_lease_is_oldest_first_and_skips_in_flight() -> None:
    accounting = BufferAccounting(1000)
    append(accounting, [10] * 6, first_id=1)
    assert accounting.lease(2) == [1, 2]
    assert accounting.lease(2) == [3, 4]
    assert accounting.release([1]) == 1
    assert accounting.lease(10) == [1, 5, 6]
    assert accounting.lease(10) == []


def test_lease_byte_limit_and_at_least_one() -> None:
    accounting = BufferAccounting(1000)
    append(accounting, [40, 10, 10, 30], first_id=1)
    assert accounting.lease(10, max_bytes=5) == [1]
    assert accounting.lease(10, max_bytes=20) == [2, 3]
    assert accounting.lease(10, max_bytes=20) == [4]
    with pytest.raises(ValueError, match="max_records"):
        accounting.lease(0)


def test_released_records_regain_their_place() -> None:
    accounting = BufferAccounting(1000)
    append(accounting, [10] * 8, first_id=1)
    first, second, third = accounting.lease(2), accounting.lease(3), accounting.lease(1)
    assert (first, second, third) == ([1, 2], [3, 4, 5], [6])
    assert accounting.release([5, 3]) == 2
    assert accounting.release([2]) == 1
    assert accounting.release([2, 99]) == 0  # not in flight any more, unknown
    assert accounting.lease(10) == [2, 3, 5, 7, 8]
    assert accounting.release_all() == 8
    assert accounting.lease(100) == list(range(1, 9))


def test_drops_oldest_pending_never_in_flight() -> None:
    accounting = BufferAccounting(50)
    append(accounting, [10] * 5, first_id=1)
    accounting.lease(2)
    accounting.release([2])  # 1 in flight, 2 pending again
    result, dropped, new_ids = append(accounting, [10, 10], first_id=6)
    assert result == AppendResult(appended=2, dropped=2)
    assert dropped == (2, 3)
    assert new_ids == [6, 7]
    assert accounting.lease(10) == [4, 5, 6, 7]
    assert accounting.stats().bytes == 50


def test_in_flight_bytes_may_exceed_the_budget() -> None:
    accounting = BufferAccounting(30)
    append(accounting, [10, 10, 10], first_id=1)
    accounting.lease(10)
    result, dropped, new_ids = append(accounting, [20, 20], first_id=4)
    assert result == AppendResult(appended=2, dropped=1)  # the first new one makes room
    assert (dropped, new_ids) == ((), [4])
    assert accounting.stats().bytes == 50
    assert accounting.stats().bytes - accounting.in_flight_bytes <= 30


def test_oversize_and_overfull_batches() -> None:
    accounting = BufferAccounting(30)
    append(accounting, [10], first_id=1)
    result, dropped, new_ids = append(accounting, [31, 5, 10, 10, 31, 10], first_id=2)
    # 31s dropped alone; to fit the last 10, record 1 then the batch's 5 make room.
    assert result == AppendResult(appended=6, dropped=4)
    assert dropped == (1,)
    assert new_ids == [2, 3, 4]
    assert accounting.stats().bytes == 30
    assert accounting.plan_append([]).result == AppendResult(appended=0, dropped=0)
    with pytest.raises(ValueError, match="negative"):
        accounting.plan_append([(-1, 0)])


def test_ack_counts_stored_records_once() -> None:
    accounting = BufferAccounting(30)
    append(accounting, [10, 10, 10], first_id=1)
    accounting.lease(1)
    append(accounting, [10], first_id=4)  # drops 2
    plan = accounting.plan_ack([1, 1, 2, 3, 42])
    assert plan.ids == (1, 3)
    assert accounting.commit_ack(plan) == 2
    assert ack(accounting, [1, 3]) == 0
    stats = accounting.stats()
    assert (stats.depth, stats.acked_total, stats.dropped_total) == (1, 2, 1)
    assert stats.appended_total == stats.depth + stats.acked_total + stats.dropped_total


def test_oldest_created_follows_the_smallest_stored_id() -> None:
    accounting = BufferAccounting(1000)
    append(accounting, [10, 10, 10], first_id=1)  # created 101, 102, 103
    accounting.lease(1)
    ack(accounting, [2])
    assert accounting.stats().oldest_created_ms == 101  # in flight still counts
    ack(accounting, [1])
    assert accounting.stats().oldest_created_ms == 103
    ack(accounting, [3])
    assert accounting.stats().oldest_created_ms is None


def test_restore_loads_pending_records_without_counting_them_again() -> None:
    accounting = BufferAccounting(100, appended_total=10, acked_total=4, dropped_total=3)
    accounting.restore([(3, 10, 500), (7, 20, 600), (8, 5, 700)])
    assert accounting.stats() == BufferStats(3, 35, 0, 500, 10, 4, 3, 100)
    assert ack(accounting, [7]) == 1
    assert accounting.lease(10) == [3, 8]
    with pytest.raises(ValueError, match="ids must increase"):
        accounting.restore([(8, 1, 0)])


def test_sparse_ids_are_found() -> None:
    accounting = BufferAccounting(10_000)
    accounting.restore([(i * i, 1, i) for i in range(1, 200)])
    assert accounting.lease(3) == [1, 4, 9]
    assert accounting.release([4, 5]) == 1
    assert ack(accounting, [9, 10, 39_601, 39_600]) == 2
    assert accounting.stats().depth == 197


def test_long_run_with_compaction_keeps_order_and_totals() -> None:
    """Enough traffic to cut the tombstones off the arrays several times."""
    accounting = BufferAccounting(5_000)
    next_id = 1
    delivered: list[int] = []
    for round_number in range(400):
        _, _, new_ids = append(accounting, [10] * 50, first_id=next_id)
        next_id += len(new_ids)
        leased = accounting.lease(40)
        if round_number % 5 == 0:
            accounting.release(leased[20:])
            leased = leased[:20]
        assert ack(accounting, leased) == len(leased)
        delivered.extend(leased)
    stats = accounting.stats()
    assert delivered == sorted(delivered)
    assert stats.appended_total == 20_000
    assert stats.appended_total == stats.depth + stats.acked_total + stats.dropped_total
    assert stats.bytes == 10 * stats.depth <= 5_000
    remaining = accounting.lease(1_000_000)
    assert len(remaining) == stats.depth
    assert remaining == sorted(remaining)
    assert not set(remaining) & set(delivered)


def test_byte_flows_count_every_appended_byte_and_every_acked_one() -> None:
    accounting = BufferAccounting(100)
    append(accounting, [10, 20, 30], first_id=1)
    append(accounting, [60, 500], first_id=4)  # drops 1 and 2 to fit; 500 never fits
    assert ack(accounting, [3, 4, 99]) == 2
    stats = accounting.stats()
    assert (stats.appended_bytes_total, stats.acked_bytes_total) == (620, 90)
    # Flows, not state: two snapshots of the same buffer compare equal whatever they say.
    assert stats == BufferAccounting(100, appended_total=5, acked_total=2, dropped_total=3).stats()
