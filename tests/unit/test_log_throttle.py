"""LogThrottle: one line per client per interval, a cap over all clients, held-back counts."""

from __future__ import annotations

from edge_gateway.log_throttle import LogThrottle


def test_one_line_per_key_per_interval_with_the_held_back_count() -> None:
    throttle = LogThrottle(interval_s=10, burst=100)
    assert throttle.admit("dev-1", 0.0) == 0
    assert [throttle.admit("dev-1", t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert throttle.admit("dev-2", 3.0) == 0  # another client is not held back by dev-1
    assert throttle.admit("dev-1", 10.0) == 3
    assert throttle.admit("dev-1", 10.5) is None


def test_the_burst_caps_lines_over_all_keys() -> None:
    throttle = LogThrottle(interval_s=10, burst=3)
    admitted = [throttle.admit(f"dev-{i}", 1.0) for i in range(10)]
    assert admitted == [0, 0, 0] + [None] * 7
    # In the next window the held-back clients are let through with their counts.
    assert throttle.admit("dev-5", 12.0) == 1


def test_keys_are_bounded() -> None:
    throttle = LogThrottle(interval_s=10, burst=1000, max_keys=2)
    for key in ("a", "b", "c"):
        throttle.admit(key, 0.0)
    # "a" was forgotten (the oldest), so it is treated as new; "c" is still remembered.
    assert throttle.admit("a", 1.0) == 0
    assert throttle.admit("c", 1.0) is None
