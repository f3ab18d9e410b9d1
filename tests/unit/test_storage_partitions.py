"""Daily partitions of `readings`: names, bounds and retention, without a database."""

from __future__ import annotations

import pytest

from hub.storage.partitions import (
    DAY_MS,
    DayPartition,
    datetime_to_ms,
    day_start_ms,
    days_around,
    expired,
    ms_to_datetime,
    parse_partition_name,
)

NOV_28 = 1_764_288_000_000  # 2025-11-28T00:00:00Z


def test_day_start_floors_to_utc_midnight() -> None:
    assert day_start_ms(NOV_28) == NOV_28
    assert day_start_ms(NOV_28 + DAY_MS - 1) == NOV_28
    assert day_start_ms(NOV_28 + DAY_MS) == NOV_28 + DAY_MS
    assert day_start_ms(-1) == -DAY_MS  # before 1970 still floors to the earlier midnight


def test_partition_of_a_reading_names_and_bounds_its_day() -> None:
    day = DayPartition.of(NOV_28 + 12 * 3_600_000)
    assert day.name == "readings_p20251128"
    assert (day.start_ms, day.end_ms) == (NOV_28, NOV_28 + DAY_MS)
    assert DayPartition.of(NOV_28 - 1).name == "readings_p20251127"
    assert DayPartition.of(0).name == "readings_p19700101"
    assert DayPartition.of(-1).name == "readings_p19691231"


def test_create_sql_has_utc_bounds_independent_of_the_session_time_zone() -> None:
    assert DayPartition(NOV_28).create_sql() == (
        "CREATE TABLE readings_p20251128 (LIKE readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        "ALTER TABLE readings ATTACH PARTITION readings_p20251128 "
        "FOR VALUES FROM ('2025-11-28T00:00:00+00:00') TO ('2025-11-29T00:00:00+00:00')",
    )


def test_a_partition_starts_at_midnight_and_stays_within_datetime_range() -> None:
    with pytest.raises(ValueError, match="start of a UTC day"):
        DayPartition(NOV_28 + 1)
    with pytest.raises(ValueError, match="supported range"):
        DayPartition(day_start_ms(253_402_300_799_999))  # 9999-12-31: its end is year 10000


def test_names_round_trip_and_foreign_names_are_ignored() -> None:
    assert parse_partition_name("readings_p20251128") == DayPartition(NOV_28)
    for name in ("readings_p20250231", "readings_old", "readings_p2025112", "other_p20251128"):
        assert parse_partition_name(name) is None


def test_ms_and_datetime_convert_exactly() -> None:
    for ms in (0, 1, NOV_28 + 123, 253_402_300_799_999, -1):
        assert datetime_to_ms(ms_to_datetime(ms)) == ms
    assert ms_to_datetime(NOV_28 + 123).isoformat() == "2025-11-28T00:00:00.123000+00:00"


def test_days_around_today() -> None:
    days = days_around(NOV_28 + 5, ahead_days=2, behind_days=1)
    assert [d.name for d in days] == [
        "readings_p20251127",
        "readings_p20251128",
        "readings_p20251129",
        "readings_p20251130",
    ]
    assert [d.name for d in days_around(NOV_28, 0, 0)] == ["readings_p20251128"]
    with pytest.raises(ValueError, match=">= 0"):
        days_around(NOV_28, -1, 0)


def test_expired_keeps_every_reading_for_the_retention_and_never_today() -> None:
    names = [DayPartition(NOV_28 + n * DAY_MS).name for n in range(-5, 3)] + ["readings_legacy"]
    now = NOV_28 + 6 * 3_600_000  # 06:00 on the 28th
    # Retention 2 days: the horizon is the 26th 06:00, so the 25th (ends the 26th 00:00) goes,
    # the 26th (still holds readings younger than two days) stays.
    assert expired(names, now, retention_days=2) == [
        "readings_p20251123",
        "readings_p20251124",
        "readings_p20251125",
    ]
    assert expired(names, NOV_28, retention_days=1) == expired(names, NOV_28 + 1, 1)
    assert "readings_p20251128" not in expired(names, now + DAY_MS - 7, retention_days=1)
    assert expired(reversed(names), now, 2) == expired(names, now, 2)  # oldest first
    with pytest.raises(ValueError, match=">= 1"):
        expired(names, now, retention_days=0)
