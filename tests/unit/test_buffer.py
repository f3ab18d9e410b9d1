"""Contract of the buffer port, run against both adapters, plus SqliteBuffer durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import edge_gateway.buffer
from edge_gateway.buffer import (
    AppendResult,
    Buffer,
    BufferRecord,
    BufferStats,
    MemoryBuffer,
    SqliteBuffer,
    StoredRecord,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

MakeBuffer = Callable[[int], Buffer]


def rec(n: int, size: int = 10) -> BufferRecord:
    """A record numbered ``n`` whose counted size is exactly ``size`` (topic 't' + value)."""
    assert size >= 5
    return BufferRecord(
        topic="t", key=None, value=n.to_bytes(4, "big") + b"x" * (size - 5), created_ms=1000 + n
    )


def numbers(leased: list[StoredRecord]) -> list[int]:
    return [int.from_bytes(stored.record.value[:4], "big") for stored in leased]


def ids(leased: list[StoredRecord]) -> list[int]:
    return [stored.id for stored in leased]


def stats(
    *,
    depth: int,
    size: int,
    in_flight: int,
    oldest: int | None,
    appended: int,
    acked: int,
    dropped: int,
    max_bytes: int,
) -> BufferStats:
    return BufferStats(
        depth=depth,
        bytes=size,
        in_flight=in_flight,
        oldest_created_ms=oldest,
        appended_total=appended,
        acked_total=acked,
        dropped_total=dropped,
        max_bytes=max_bytes,
    )


@pytest.fixture(params=["memory", "sqlite"])
def make_buffer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeBuffer]:
    opened: list[Buffer] = []

    def make(max_bytes: int) -> Buffer:
        buffer: Buffer
        if request.param == "memory":
            buffer = MemoryBuffer(max_bytes)
        else:
            path = tmp_path / f"buffer-{len(opened)}.db"
            buffer = SqliteBuffer(path, max_bytes=max_bytes, synchronous="NORMAL")
        opened.append(buffer)
        return buffer

    yield make
    for buffer in opened:
        buffer.close()


# -- contract: both adapters -----------------------------------------------------------------


def test_public_api_is_exactly_the_agreed_names() -> None:
    expected = {
        "AppendResult",
        "Buffer",
        "BufferAccounting",
        "BufferRecord",
        "BufferStats",
        "MemoryBuffer",
        "SqliteBuffer",
        "StoredRecord",
    }
    assert set(edge_gateway.buffer.__all__) == expected
    assert all(hasattr(edge_gateway.buffer, name) for name in expected)


def test_record_size_counts_topic_key_value_and_headers() -> None:
    record = BufferRecord("iot.telemetry", b"dev-1", b"12345", 0, (("error", b"bad"), ("a", b"")))
    assert record.size == 13 + 5 + 5 + (5 + 3) + (1 + 0)
    assert BufferRecord("t", None, b"", 0).size == 1


def test_adapters_satisfy_the_port(make_buffer: MakeBuffer) -> None:
    assert isinstance(make_buffer(100), Buffer)


def test_empty_buffer(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(100)
    assert buffer.stats() == stats(
        depth=0, size=0, in_flight=0, oldest=None, appended=0, acked=0, dropped=0, max_bytes=100
    )
    assert buffer.lease(10) == []
    assert buffer.ack([1, 2]) == 0
    buffer.release([1])
    assert buffer.append([]) == AppendResult(appended=0, dropped=0)
    assert buffer.stats().depth == 0


def test_records_round_trip_exactly(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(10_000)
    records = [
        BufferRecord("iot.telemetry", b"dev-1", b'{"v":1}', 1, (("error", b"\x00\xff"),)),
        BufferRecord("iot.telemetry.dlq", None, b"", 2, (("mqtt_topic", b"a/b"), ("ü", b""))),
        BufferRecord("iot.alerts", b"", bytes(range(256)), 3),
    ]
    buffer.append(records)
    leased = buffer.lease(10)
    assert [stored.record for stored in leased] == records
    assert leased[1].record.key is None
    assert leased[2].record.key == b""


def test_append_lease_ack_oldest_first(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(1000)
    assert buffer.append([rec(1), rec(2)]) == AppendResult(appended=2, dropped=0)
    assert buffer.append([rec(3), rec(4), rec(5)]) == AppendResult(appended=3, dropped=0)
    assert buffer.stats() == stats(
        depth=5, size=50, in_flight=0, oldest=1001, appended=5, acked=0, dropped=0, max_bytes=1000
    )

    first = buffer.lease(3)
    assert numbers(first) == [1, 2, 3]
    assert ids(first) == sorted(ids(first))
    assert buffer.stats().in_flight == 3

    rest = buffer.lease(10)  # in-flight records are not leased twice
    assert numbers(rest) == [4, 5]
    assert min(ids(rest)) > max(ids(first))
    assert buffer.lease(10) == []
    assert buffer.stats().in_flight == 5

    assert buffer.ack(ids(first)) == 3
    assert buffer.stats() == stats(
        depth=2, size=20, in_flight=2, oldest=1004, appended=5, acked=3, dropped=0, max_bytes=1000
    )
    assert buffer.ack(ids(rest)) == 2
    assert buffer.stats() == stats(
        depth=0, size=0, in_flight=0, oldest=None, appended=5, acked=5, dropped=0, max_bytes=1000
    )


def test_lease_respects_max_bytes_but_returns_at_least_one(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(1000)
    buffer.append([rec(1, 50), rec(2, 10), rec(3, 10), rec(4, 10)])
    assert numbers(buffer.lease(10, max_bytes=20)) == [1]  # alone over the limit
    assert numbers(buffer.lease(10, max_bytes=25)) == [2, 3]
    assert numbers(buffer.lease(10, max_bytes=0)) == [4]


def test_lease_rejects_non_positive_max_records(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(100)
    buffer.append([rec(1)])
    with pytest.raises(ValueError, match="max_records"):
        buffer.lease(0)
    assert buffer.stats().in_flight == 0


def test_released_records_come_back_before_newer_ones(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(1000)
    buffer.append([rec(n) for n in range(1, 6)])
    batch_a = buffer.lease(2)
    batch_b = buffer.lease(2)
    buffer.append([rec(6)])
    buffer.release(ids(batch_b))
    assert buffer.stats().in_flight == 2
    buffer.release(ids(batch_a))
    assert buffer.stats().in_flight == 0
    again = buffer.lease(10)
    assert numbers(again) == [1, 2, 3, 4, 5, 6]
    assert ids(again)[:4] == ids(batch_a) + ids(batch_b)


def test_partial_release_keeps_order_and_other_leases(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(1000)
    buffer.append([rec(n) for n in range(1, 7)])
    leased = buffer.lease(4)
    buffer.release([ids(leased)[3], ids(leased)[1]])
    assert numbers(buffer.lease(10)) == [2, 4, 5, 6]
    assert buffer.ack(ids(leased)) == 4
    assert buffer.stats().depth == 2


def test_release_ignores_ids_not_in_flight(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(1000)
    buffer.append([rec(1), rec(2)])
    leased = buffer.lease(1)
    buffer.ack(ids(leased))
    buffer.release([*ids(leased), 999, ids(leased)[0] + 1])  # acked, unknown, pending
    assert buffer.stats().in_flight == 0
    assert numbers(buffer.lease(10)) == [2]


def test_full_buffer_drops_oldest_pending_and_counts(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(50)
    buffer.append([rec(n) for n in range(1, 6)])
    assert buffer.stats().bytes == 50
    assert buffer.append([rec(6), rec(7)]) == AppendResult(appended=2, dropped=2)
    assert buffer.stats() == stats(
        depth=5, size=50, in_flight=0, oldest=1003, appended=7, acked=0, dropped=2, max_bytes=50
    )
    assert numbers(buffer.lease(10)) == [3, 4, 5, 6, 7]


def test_in_flight_records_are_never_dropped(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(30)
    buffer.append([rec(1), rec(2), rec(3)])
    leased = buffer.lease(2)
    # Room for 6 means dropping 3, then 4 (stored earlier in the same batch), never 1 or 2.
    assert buffer.append([rec(4), rec(5)]) == AppendResult(appended=2, dropped=2)
    assert buffer.stats() == stats(
        depth=3, size=30, in_flight=2, oldest=1001, appended=5, acked=0, dropped=2, max_bytes=30
    )
    assert buffer.ack(ids(leased)) == 2
    assert numbers(buffer.lease(10)) == [5]


def test_budget_is_exceeded_by_in_flight_bytes_only(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(30)
    buffer.append([rec(1), rec(2), rec(3)])
    leased = buffer.lease(10)
    assert buffer.append([rec(4)]) == AppendResult(appended=1, dropped=0)
    assert buffer.stats().bytes == 40
    assert buffer.append([rec(5)]) == AppendResult(appended=1, dropped=1)  # 4 goes, 5 stays
    assert buffer.stats().bytes == 40
    assert buffer.ack(ids(leased)) == 3
    assert buffer.stats() == stats(
        depth=1, size=10, in_flight=0, oldest=1005, appended=5, acked=3, dropped=1, max_bytes=30
    )


def test_records_released_over_budget_are_dropped_by_the_next_append(
    make_buffer: MakeBuffer,
) -> None:
    buffer = make_buffer(30)
    buffer.append([rec(1), rec(2), rec(3)])
    leased = buffer.lease(10)
    buffer.append([rec(4)])  # over budget by in-flight bytes
    buffer.release(ids(leased))
    assert buffer.stats().bytes == 40
    assert buffer.append([rec(5)]) == AppendResult(appended=1, dropped=2)
    assert buffer.stats().bytes == 30
    assert numbers(buffer.lease(10)) == [3, 4, 5]


def test_oversize_record_is_dropped_alone(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(50)
    buffer.append([rec(1), rec(2), rec(3)])
    assert buffer.append([rec(4, 51)]) == AppendResult(appended=1, dropped=1)
    assert buffer.append([rec(5), rec(6, 500), rec(7)]) == AppendResult(appended=3, dropped=1)
    assert buffer.stats() == stats(
        depth=5, size=50, in_flight=0, oldest=1001, appended=7, acked=0, dropped=2, max_bytes=50
    )
    assert numbers(buffer.lease(10)) == [1, 2, 3, 5, 7]


def test_record_exactly_at_budget_fits(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(50)
    buffer.append([rec(1)])
    assert buffer.append([rec(2, 50)]) == AppendResult(appended=1, dropped=1)
    assert numbers(buffer.lease(10)) == [2]


def test_batch_larger_than_budget_keeps_its_newest_records(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(30)
    buffer.append([rec(1)])
    assert buffer.append([rec(n) for n in range(2, 7)]) == AppendResult(appended=5, dropped=3)
    assert numbers(buffer.lease(10)) == [4, 5, 6]
    assert buffer.stats().dropped_total == 3


def test_ack_ignores_dropped_duplicate_and_unknown_ids(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(50)
    buffer.append([rec(n) for n in range(1, 6)])
    leased = buffer.lease(2)
    pending = buffer.lease(3)
    buffer.release(ids(pending))
    buffer.append([rec(6), rec(7)])  # drops the two oldest pending: 3 and 4
    assert buffer.ack([*ids(leased), *ids(pending), ids(leased)[0], 10_000]) == 3
    assert buffer.stats() == stats(
        depth=2, size=20, in_flight=0, oldest=1006, appended=7, acked=3, dropped=2, max_bytes=50
    )
    assert buffer.ack(ids(leased)) == 0  # acked twice
    assert buffer.stats().acked_total == 3


def test_ack_of_a_pending_record_deletes_it(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(100)
    buffer.append([rec(1), rec(2), rec(3)])
    leased = buffer.lease(3)
    buffer.release(ids(leased))
    assert buffer.ack([ids(leased)[0]]) == 1
    assert buffer.stats().oldest_created_ms == 1002
    assert numbers(buffer.lease(10)) == [2, 3]


def test_closed_buffer_refuses_calls(make_buffer: MakeBuffer) -> None:
    buffer = make_buffer(100)
    buffer.close()
    buffer.close()
    with pytest.raises(RuntimeError, match="closed"):
        buffer.append([rec(1)])
    with pytest.raises(RuntimeError, match="closed"):
        buffer.stats()


def test_concurrent_appender_and_forwarder(make_buffer: MakeBuffer) -> None:
    """A bridge thread appends while a forwarder thread leases, sometimes fails, and acks."""
    buffer = make_buffer(10_000_000)
    batches, batch_size = 100, 10
    appended_all = threading.Event()

    def bridge() -> None:
        try:
            for batch in range(batches):
                buffer.append([rec(batch * batch_size + i) for i in range(batch_size)])
        finally:
            appended_all.set()

    def forwarder() -> list[int]:
        delivered: list[int] = []
        attempt = 0
        while not (appended_all.is_set() and buffer.stats().depth == 0):
            leased = buffer.lease(25)
            if not leased:
                continue
            attempt += 1
            if attempt % 3 == 0:  # the produce failed: retry later, same order
                buffer.release(ids(leased))
                continue
            delivered.extend(numbers(leased))
            buffer.ack(ids(leased))
        return delivered

    with ThreadPoolExecutor(max_workers=2) as executor:
        bridged = executor.submit(bridge)
        forwarded = executor.submit(forwarder)
        bridged.result(timeout=120)
        delivered = forwarded.result(timeout=120)
    assert delivered == list(range(batches * batch_size))
    final = buffer.stats()
    assert (final.depth, final.appended_total, final.acked_total) == (0, 1000, 1000)


# -- SqliteBuffer only -----------------------------------------------------------------------


def test_sqlite_reopen_restores_pending_records_and_totals(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "buffer.db"
    records = [
        BufferRecord("iot.telemetry", b"dev-1", b'{"seq":1}', 11),
        BufferRecord("iot.telemetry.dlq", None, b"\x00raw", 12, (("error", b"bad json"),)),
        BufferRecord("iot.device-status", b"", b"{}", 13, (("a", b""), ("b", b"\xff"))),
        BufferRecord("iot.telemetry", b"dev-2", b'{"seq":2}', 14),
    ]
    with SqliteBuffer(path, max_bytes=1000) as buffer:
        buffer.append([BufferRecord("t", None, b"gone", 10)])
        buffer.append(records)
        buffer.ack(ids(buffer.lease(1)))
        buffer.append([BufferRecord("t", None, b"x" * 2000, 15)])  # oversize, dropped
        before = buffer.stats()
        first_ids = ids(buffer.lease(10))

    with SqliteBuffer(path, max_bytes=1000) as buffer:
        assert buffer.stats() == before
        assert before == stats(
            depth=4,
            size=sum(r.size for r in records),
            in_flight=0,
            oldest=11,
            appended=6,
            acked=1,
            dropped=1,
            max_bytes=1000,
        )
        leased = buffer.lease(10)
        assert [stored.record for stored in leased] == records
        assert ids(leased) == first_ids


def test_sqlite_in_flight_at_close_are_pending_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    with SqliteBuffer(path, max_bytes=1000) as buffer:
        buffer.append([rec(n) for n in range(1, 6)])
        leased = buffer.lease(3)
        buffer.ack([ids(leased)[1]])
        assert buffer.stats().in_flight == 2

    with SqliteBuffer(path, max_bytes=1000) as buffer:
        assert buffer.stats().in_flight == 0
        assert buffer.stats().depth == 4
        assert numbers(buffer.lease(10)) == [1, 3, 4, 5]


def test_sqlite_ids_keep_increasing_after_reopen_of_an_empty_buffer(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    with SqliteBuffer(path, max_bytes=1000) as buffer:
        buffer.append([rec(1), rec(2)])
        old_ids = ids(buffer.lease(10))
        buffer.ack(old_ids)
    with SqliteBuffer(path, max_bytes=1000) as buffer:
        buffer.append([rec(3)])
        assert ids(buffer.lease(10))[0] > max(old_ids)


def test_sqlite_lowered_budget_is_enforced_by_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    with SqliteBuffer(path, max_bytes=1000) as buffer:
        buffer.append([rec(n) for n in range(1, 11)])
    with SqliteBuffer(path, max_bytes=30) as buffer:
        assert buffer.stats().bytes == 100  # restored as is
        assert buffer.append([rec(11)]) == AppendResult(appended=1, dropped=8)
        assert numbers(buffer.lease(10)) == [9, 10, 11]


def test_sqlite_new_file_uses_wal_and_incremental_auto_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    SqliteBuffer(path, max_bytes=1000).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    finally:
        conn.close()


def test_sqlite_file_shrinks_after_a_drained_backlog(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"

    def file_pages() -> int:
        conn = sqlite3.connect(path)
        try:
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            return int(pages)
        finally:
            conn.close()

    with SqliteBuffer(path, max_bytes=100_000_000, synchronous="NORMAL") as buffer:
        for batch in range(40):
            buffer.append([rec(batch * 500 + i, 1000) for i in range(500)])
    backlog_pages = file_pages()
    with SqliteBuffer(path, max_bytes=100_000_000, synchronous="NORMAL") as buffer:
        while leased := buffer.lease(500):
            buffer.ack(ids(leased))
        assert buffer.stats().depth == 0
    assert backlog_pages > 4000  # about 20 MB of records
    assert file_pages() < backlog_pages // 4


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    SqliteBuffer(path, max_bytes=1000).close()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA user_version = 99")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        SqliteBuffer(path, max_bytes=1000)


def test_sqlite_rejects_invalid_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteBuffer(tmp_path / "a.db", max_bytes=1000, synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_bytes"):
        SqliteBuffer(tmp_path / "b.db", max_bytes=0)


_APPEND_FOREVER = """
import sys
from pathlib import Path
from edge_gateway.buffer import BufferRecord, SqliteBuffer

buffer = SqliteBuffer(Path(sys.argv[1]), max_bytes=1 << 30, synchronous=sys.argv[2])
batch = 0
while True:
    buffer.append(
        [BufferRecord("t", None, f"{batch}:{i}".encode(), batch) for i in range(50)]
    )
    print(batch, flush=True)
    batch += 1
"""


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_sqlite_sigkill_loses_nothing_that_append_returned_for(
    tmp_path: Path, synchronous: str
) -> None:
    path = tmp_path / "buffer.db"
    confirmed_batches = 20
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", _APPEND_FOREVER, str(path), synchronous],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    ) as child:
        assert child.stdout is not None
        confirmed = [child.stdout.readline() for _ in range(confirmed_batches)]
        # Killed while it keeps appending, so most likely in the middle of a transaction.
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    assert confirmed == [f"{batch}\n" for batch in range(confirmed_batches)]

    with SqliteBuffer(path, max_bytes=1 << 30) as buffer:
        values = [stored.record.value.decode() for stored in buffer.lease(1_000_000)]
        final = buffer.stats()
    assert len(values) >= confirmed_batches * 50
    assert len(values) % 50 == 0  # a batch is all there or not at all
    expected = [f"{batch}:{i}" for batch in range(len(values) // 50) for i in range(50)]
    assert values == expected
    assert (final.depth, final.appended_total) == (len(values), len(values))


def test_id_ranges_merge_only_consecutive_ids() -> None:
    from edge_gateway.buffer._sqlite import id_ranges

    assert id_ranges([]) == []
    assert id_ranges([7, 3, 4, 5, 9, 10]) == [(3, 5), (7, 7), (9, 10)]
