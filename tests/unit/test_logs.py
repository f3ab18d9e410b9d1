from __future__ import annotations

import logging

from iot_common.logs import LogfmtFormatter, RepeatLimitFilter


def record(msg: str, name: str = "edge.test", **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_logfmt_is_one_line_with_quoted_values() -> None:
    line = LogfmtFormatter().format(record("dead_letter", device="cnc 01", reason="a\nb"))
    assert "\n" not in line
    assert " level=warning logger=edge.test event=dead_letter " in line
    assert 'device="cnc 01"' in line
    assert 'reason="a\\nb"' in line


def test_repeats_are_held_back_and_counted() -> None:
    now = [0.0]
    limit = RepeatLimitFilter(interval_s=10, clock=lambda: now[0])
    child = "aiokafka.conn"  # records of a child logger are limited too
    assert limit.filter(record("Unable connect to %s", child))
    assert not any(limit.filter(record("Unable connect to %s", child)) for _ in range(500))
    assert limit.filter(record("another message", child))
    assert all(limit.filter(record("ours", "edge.bridge")) for _ in range(3))  # never limited
    now[0] = 10.5
    passed = record("Unable connect to %s", child)
    assert limit.filter(passed)
    assert passed.__dict__["suppressed"] == 500
