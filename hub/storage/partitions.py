"""Daily range partitions of ``readings``: pure naming and bounds, plus creation and retention.

Each UTC day ``[00:00, 24:00)`` has its own partition ``readings_pYYYYMMDD``. Partitions are
created ahead of time (``ensure_partitions``, from a periodic maintenance task) and on demand by
the writer for a reading whose day has none; retention drops whole partitions, which costs no
vacuum and leaves no bloat, unlike a ``DELETE``.

Neither blocks ingest or queries. ``CREATE TABLE ... PARTITION OF`` and ``DROP TABLE`` of a
partition take an ACCESS EXCLUSIVE lock on ``readings`` (measured on PostgreSQL 15): waiting
behind one long query, they would queue every writer and reader behind them. Instead a partition
is created as a plain table and attached, and detached concurrently before it is dropped; both
need only SHARE UPDATE EXCLUSIVE on ``readings``, which conflicts with neither reads nor writes.
A lock timeout bounds any wait; it surfaces as ``LockNotAvailableError``, a transient error (see
``hub.storage.postgres.TRANSIENT_ERRORS``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg

PARENT: Final = "readings"
DAY_MS: Final = 86_400_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAME = re.compile(rf"^{PARENT}_p(\d{{4}})(\d{{2}})(\d{{2}})$")
# Serialise partition DDL between hub processes; the values only have to be unique among our
# advisory locks (see hub.storage.migrations).
_CREATE_LOCK_KEY: Final = 0x696F_7400_0000_0002
_DROP_LOCK_KEY: Final = 0x696F_7400_0000_0003
LOCK_TIMEOUT_S: Final = 5.0


def day_start_ms(ts_ms: int) -> int:
    """Start of the UTC day holding ``ts_ms`` (floor, also before 1970)."""
    return ts_ms - ts_ms % DAY_MS


def ms_to_datetime(ts_ms: int) -> datetime:
    """Epoch ms as an aware UTC datetime, exactly (no float rounding)."""
    return _EPOCH + timedelta(milliseconds=ts_ms)


def datetime_to_ms(value: datetime) -> int:
    """An aware datetime as epoch ms, exactly (sub-millisecond part truncated towards the past)."""
    return (value - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class DayPartition:
    """The partition of one UTC day: rows with ``start_ms <= ts < end_ms``."""

    start_ms: int

    def __post_init__(self) -> None:
        if self.start_ms % DAY_MS:
            raise ValueError(f"not the start of a UTC day: {self.start_ms}")
        try:
            ms_to_datetime(self.start_ms)
            ms_to_datetime(self.start_ms + DAY_MS)
        except OverflowError:
            raise ValueError(
                f"day out of the supported range (years 1..9999): {self.start_ms}"
            ) from None

    @classmethod
    def of(cls, ts_ms: int) -> DayPartition:
        return cls(day_start_ms(ts_ms))

    @property
    def end_ms(self) -> int:
        return self.start_ms + DAY_MS

    @property
    def name(self) -> str:
        day = ms_to_datetime(self.start_ms)
        return f"{PARENT}_p{day.year:04d}{day.month:02d}{day.day:02d}"

    def create_sql(self) -> tuple[str, str]:
        """Create the table, then attach it (the primary key is built on the empty table)."""
        # Literal bounds with an explicit +00: independent of the session's TimeZone.
        start = ms_to_datetime(self.start_ms).isoformat()
        end = ms_to_datetime(self.end_ms).isoformat()
        return (
            f"CREATE TABLE {self.name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
            f"ALTER TABLE {PARENT} ATTACH PARTITION {self.name} "
            f"FOR VALUES FROM ('{start}') TO ('{end}')",
        )


def parse_partition_name(name: str) -> DayPartition | None:
    """The day of a partition named by ``DayPartition.name``; None for any other name."""
    match = _NAME.match(name)
    if match is None:
        return None
    year, month, day = (int(part) for part in match.groups())
    try:
        start = datetime(year, month, day, tzinfo=UTC)
        return DayPartition(datetime_to_ms(start))
    except ValueError:  # a name like readings_p20250231, not ours
        return None


def days_around(now_ms: int, ahead_days: int, behind_days: int) -> list[DayPartition]:
    """Today's partition plus ``behind_days`` before and ``ahead_days`` after it."""
    if ahead_days < 0 or behind_days < 0:
        raise ValueError("ahead_days and behind_days must be >= 0")
    today = day_start_ms(now_ms)
    return [DayPartition(today + n * DAY_MS) for n in range(-behind_days, ahead_days + 1)]


def expired(names: Iterable[str], now_ms: int, retention_days: int) -> list[str]:
    """Partitions whose whole day is more than ``retention_days`` old, oldest first.

    A partition is dropped only once its last millisecond is older than the retention horizon,
    so every reading is kept at least ``retention_days``; today's partition is never expired.
    """
    if retention_days < 1:
        raise ValueError("retention_days must be >= 1")
    horizon = min(now_ms - retention_days * DAY_MS, day_start_ms(now_ms))
    days = [day for day in map(parse_partition_name, names) if day is not None]
    return [day.name for day in sorted(days, key=lambda d: d.start_ms) if day.end_ms <= horizon]


async def existing_partitions(conn: asyncpg.Connection) -> list[str]:
    """Names of every partition of ``readings`` (including any not named by us)."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = $1::regclass ORDER BY c.relname",
        PARENT,
    )
    return [row["relname"] for row in rows]


async def create_partitions(
    conn: asyncpg.Connection,
    days: Iterable[DayPartition],
    *,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> list[str]:
    """Create the partitions among ``days`` that do not exist yet, in one transaction; returns
    the names created. Safe against other hub processes doing the same at the same time."""
    wanted = sorted(set(days), key=lambda d: d.start_ms)
    if not wanted:
        return []
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = {_ms(lock_timeout_s)}")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _CREATE_LOCK_KEY)
        present = set(await existing_partitions(conn))
        created = []
        for day in wanted:
            if day.name not in present:
                for sql in day.create_sql():
                    await conn.execute(sql)
                created.append(day.name)
    return created


async def ensure_partitions(
    conn: asyncpg.Connection, now_ms: int, ahead_days: int, behind_days: int = 1
) -> list[str]:
    """Make sure the partitions from ``behind_days`` before today to ``ahead_days`` after exist."""
    return await create_partitions(conn, days_around(now_ms, ahead_days, behind_days))


async def drop_expired_partitions(
    conn: asyncpg.Connection,
    now_ms: int,
    retention_days: int,
    *,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> list[str]:
    """Drop the partitions older than the retention (see ``expired``); returns their names.

    ``conn`` must not be in a transaction (``DETACH ... CONCURRENTLY`` runs its own two). When
    another process is already at it, returns at once with nothing dropped. A detach that was
    interrupted (its partition is left "detach pending") is finished on the next call.
    """
    if not expired(await _day_tables(conn), now_ms, retention_days):
        return []
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _DROP_LOCK_KEY):
        return []
    dropped = []
    try:
        await conn.execute(f"SET lock_timeout = {_ms(lock_timeout_s)}")
        tables = await _day_tables(conn)
        for name in expired(tables, now_ms, retention_days):
            if tables[name] != "detached":
                mode = "FINALIZE" if tables[name] == "detach pending" else "CONCURRENTLY"
                await conn.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {name} {mode}")
            await conn.execute(f"DROP TABLE {name}")
            dropped.append(name)
    finally:
        await conn.execute("RESET lock_timeout")
        await conn.execute("SELECT pg_advisory_unlock($1)", _DROP_LOCK_KEY)
    return dropped


async def _day_tables(conn: asyncpg.Connection) -> dict[str, str]:
    """Tables named like day partitions, by name: "attached", "detach pending", or "detached"
    (left behind by a retention run that died between detaching and dropping)."""
    rows = await conn.fetch(
        "SELECT c.relname, i.inhdetachpending FROM pg_class c "
        "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = $1::regclass "
        "WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1::regclass) "
        "AND c.relkind = 'r' AND c.relname LIKE $2",
        PARENT,
        f"{PARENT}\\_p%",
    )
    states = {None: "detached", False: "attached", True: "detach pending"}
    return {row["relname"]: states[row["inhdetachpending"]] for row in rows}


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
