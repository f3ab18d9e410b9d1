"""`--expires-in` durations."""

from __future__ import annotations

import pytest

from hub.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("45m", 2700),
        ("12h", 43_200),
        ("30d", 2_592_000),
        ("2w", 1_209_600),
        (" 7D ", 604_800),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "1.5h", "-1d", "30 days", "1y", "0d"])
def test_bad_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 30d|longer than zero"):
        parse_duration(text)
