"""Shelf requests, pure (`hub.alarms.shelving`)."""

from __future__ import annotations

import pytest

from hub.alarms.shelving import check_reason, shelf_end
from hub.storage.model import AlertRow

HOUR = 3_600_000
NOW = 1_700_000_000_000


def test_a_shelf_ends_hours_from_now_or_at_until() -> None:
    assert shelf_end(NOW, hours=2, until=None, max_hours=24) == NOW + 2 * HOUR
    assert shelf_end(NOW, hours=0.5, until=None, max_hours=24) == NOW + HOUR // 2
    assert shelf_end(NOW, hours=None, until=NOW + 24 * HOUR, max_hours=24) == NOW + 24 * HOUR


@pytest.mark.parametrize(
    ("hours", "until", "message"),
    [
        (25, None, "hours must be at most 24"),
        (0, None, "hours must be more than 0"),
        (-1, None, "hours must be more than 0"),
        (None, NOW, "until must be in the future"),
        (None, NOW + 24 * HOUR + 1, "until must be at most 24 hours"),
        (None, None, "exactly one of hours or until"),
        (1, NOW + HOUR, "exactly one of hours or until"),
    ],
)
def test_a_shelf_past_the_maximum_or_ill_formed_is_refused(
    hours: float | None, until: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        shelf_end(NOW, hours=hours, until=until, max_hours=24)


def test_a_reason_is_required_and_bounded() -> None:
    assert check_reason("  pump being replaced ") == "pump being replaced"
    for bad in (None, "", "   "):
        with pytest.raises(ValueError, match="reason is required"):
            check_reason(bad)
    with pytest.raises(ValueError, match="reason must be at most"):
        check_reason("x" * 1001)
    with pytest.raises(ValueError, match="NUL"):
        check_reason("a\x00b")


def test_an_alert_is_shelved_while_its_shelf_lasts() -> None:
    row = AlertRow(
        1, "d1", "gw", "r", "warning", "active", False, None, None, None, None, None, "m",
        0, 0, None, None, 1, "op", 0, NOW + HOUR, "why",
    )  # fmt: skip
    assert row.shelved(NOW)
    assert row.shelved(NOW + HOUR - 1)
    assert not row.shelved(NOW + HOUR)
    assert not AlertRow(**{**row.to_json(), "shelved_until": None}).shelved(NOW)
