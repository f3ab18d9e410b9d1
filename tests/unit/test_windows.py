from __future__ import annotations

import pytest

from hub.windows import MINUTE_MS, DirtyBuckets, bucket_end, bucket_start, due_at, late

T0 = 1_764_268_800_000  # a minute boundary


def test_bucket_start_and_end() -> None:
    assert bucket_start(T0) == T0
    assert bucket_start(T0 + 59_999) == T0
    assert bucket_start(T0 + 60_000) == T0 + 60_000
    assert bucket_start(T0 - 1) == T0 - 60_000
    assert bucket_end(T0 + 123) == T0 + 60_000
    assert bucket_start(-1) == -60_000  # floors, never truncates towards zero
    assert bucket_start(T0 + 7_500, width_ms=5_000) == T0 + 5_000
    with pytest.raises(ValueError, match="width_ms"):
        bucket_start(T0, width_ms=0)


def test_late_means_after_the_bucket_was_due() -> None:
    grace = 120_000
    assert due_at(T0 + 10, grace) == T0 + MINUTE_MS + grace
    assert not late(T0 + 10, T0 + 59_999, grace)  # within its own minute
    assert not late(T0 + 10, T0 + 179_999, grace)  # within the grace period
    assert late(T0 + 10, T0 + 180_000, grace)
    assert late(T0 + 10, T0 + 60_000, 0)


def test_buckets_come_due_after_end_plus_grace_in_deterministic_order() -> None:
    dirty = DirtyBuckets(grace_ms=5_000)
    # Arrival order is deliberately scrambled.
    dirty.mark("press-01", "temp", T0 + 61_000)
    dirty.mark("cnc-01", "temp", T0 + 30_000)
    dirty.mark("cnc-01", "load", T0 + 10_000)
    dirty.mark("cnc-01", "load", T0 + 59_000)  # same bucket: marked once
    dirty.mark("a-01", "temp", T0 + 1_000)
    assert len(dirty) == 4
    assert dirty.next_due_ms() == T0 + 65_000
    assert dirty.due(T0 + 64_999) == []
    assert dirty.due(T0 + 65_000) == [
        ("a-01", "temp", T0),
        ("cnc-01", "load", T0),
        ("cnc-01", "temp", T0),
    ]
    assert dirty.due(T0 + 124_999) == []
    assert dirty.due(T0 + 125_000) == [("press-01", "temp", T0 + 60_000)]
    assert len(dirty) == 0
    assert dirty.next_due_ms() is None


def test_late_readings_bring_their_bucket_back_so_it_is_corrected() -> None:
    dirty = DirtyBuckets(grace_ms=5_000)
    dirty.mark("cnc-01", "temp", T0 + 1_000)
    assert dirty.due(T0 + 65_000) == [("cnc-01", "temp", T0)]
    # A reading within the grace after the flush, then one long after: each time the bucket
    # is due again at once.
    dirty.mark("cnc-01", "temp", T0 + 2_000)
    assert dirty.due(T0 + 65_001) == [("cnc-01", "temp", T0)]
    dirty.mark("cnc-01", "temp", T0 + 3_000)
    dirty.mark("cnc-01", "temp", T0 + 4_000)
    assert dirty.due(T0 + 3_600_000) == [("cnc-01", "temp", T0)]
    assert dirty.due(T0 + 3_600_000) == []


def test_late_bucket_sorts_before_current_ones() -> None:
    dirty = DirtyBuckets(grace_ms=0)
    dirty.mark("z", "m", T0 + 120_000)
    dirty.mark("z", "m", T0)  # late
    assert dirty.due(T0 + 180_000) == [("z", "m", T0), ("z", "m", T0 + 120_000)]


def test_memory_is_bounded_by_handing_out_the_earliest_buckets_early() -> None:
    dirty = DirtyBuckets(grace_ms=60_000, max_pending=3)
    for minute in range(5):
        dirty.mark("cnc-01", "temp", T0 + minute * MINUTE_MS)
    assert dirty.due(T0) == [("cnc-01", "temp", T0), ("cnc-01", "temp", T0 + MINUTE_MS)]
    assert len(dirty) == 3
    assert dirty.early_total == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"grace_ms": -1}, "grace_ms"), ({"grace_ms": 0, "max_pending": 0}, "max_pending")],
)
def test_dirty_buckets_validate(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DirtyBuckets(**kwargs)
