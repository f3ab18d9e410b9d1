"""M4 downsampling: random series checked against the properties a chart relies on."""

from __future__ import annotations

import random

import pytest

from hub.storage.downsample import m4


def random_series(rng: random.Random) -> tuple[list[int], list[float]]:
    n = rng.choice([0, 1, 2, 5, 50, 500, 5000])
    ts = sorted(rng.sample(range(1_000_000), n))  # irregular, with gaps
    shape = rng.choice(["noise", "flat", "spiky", "steps"])
    values: list[float] = []
    for i in range(n):
        if shape == "flat":
            values.append(1.0)
        elif shape == "spiky":
            values.append(1000.0 if rng.random() < 0.01 else rng.gauss(0, 1))
        elif shape == "steps":
            values.append(float(i // 100))
        else:
            values.append(rng.gauss(0, 1))
    return ts, values


@pytest.mark.parametrize("seed", range(300))
def test_properties_hold_for_random_series(seed: int) -> None:
    rng = random.Random(seed)
    ts, values = random_series(rng)
    max_points = rng.choice([2, 3, 4, 7, 100, 1000])
    out_ts, out_values = m4(ts, values, max_points)

    assert len(out_ts) == len(out_values) <= max(max_points, 0)
    if len(ts) <= max_points:
        assert (out_ts, out_values) == (ts, values)  # short input untouched
        return
    # Every output point is an input point, in the original order, none twice.
    pairs = list(zip(ts, values, strict=True))
    positions = [pairs.index(p) for p in zip(out_ts, out_values, strict=True)]
    assert positions == sorted(set(positions))
    assert min(out_values) == min(values)
    assert max(out_values) == max(values)


def test_a_single_spike_survives_heavy_downsampling() -> None:
    ts = list(range(100_000))
    values = [0.0] * 100_000
    values[54_321] = 99.0
    values[77_777] = -5.0
    out_ts, out_values = m4(ts, values, 40)
    assert (54_321, 99.0) in zip(out_ts, out_values, strict=True)
    assert (77_777, -5.0) in zip(out_ts, out_values, strict=True)
    assert len(out_ts) <= 40


def test_columns_keep_first_min_max_last_in_time_order() -> None:
    # One column (max_points 4 -> 1 column of 4 points) over 6 points.
    ts = [0, 1, 2, 3, 4, 5]
    values = [5.0, 9.0, 1.0, 7.0, 3.0, 4.0]
    assert m4(ts, values, 4) == ([0, 1, 2, 5], [5.0, 9.0, 1.0, 4.0])


def test_columns_follow_time_not_count() -> None:
    # A dense burst at the start and a sparse tail: the tail's points keep their own columns
    # instead of being merged into a few count-based buckets.
    ts = [*range(1000), 10_000, 20_000, 30_000]
    values = [*(float(i % 7) for i in range(1000)), 100.0, 200.0, 300.0]
    out_ts, out_values = m4(ts, values, 40, start=0, end=40_000)
    assert out_ts[-3:] == [10_000, 20_000, 30_000]
    assert out_values[-3:] == [100.0, 200.0, 300.0]


def test_explicit_range_bounds_the_number_of_columns() -> None:
    ts = list(range(0, 3_600_000, 100))
    values = [float(i % 13) for i in range(len(ts))]
    out_ts, _ = m4(ts, values, 1000, start=0, end=3_600_000)
    assert len(out_ts) <= 1000
    assert len(out_ts) > 900  # dense data fills nearly every column


@pytest.mark.parametrize(
    ("ts", "values", "max_points", "message"),
    [
        ([1, 2], [1.0], 10, "differ in length"),
        ([1, 2, 3], [1.0, 2.0, 3.0], 1, "at least 2"),
    ],
)
def test_bad_arguments_are_refused(
    ts: list[int], values: list[float], max_points: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        m4(ts, values, max_points)
