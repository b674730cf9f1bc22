"""MidGrid: boundary writes (first write wins, fill vs unknown gaps, horizon), reads, and the
rolling log-return moments against a naive model of the grid."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from feature_service.windows.mids import MidGrid, ReturnMoments

S = 1_000_000
B0 = 1_700_000_000  # a boundary, in seconds


def us(sec: int) -> int:
    return sec * S


def test_record_and_read_back() -> None:
    grid = MidGrid()
    grid.record(us(B0), 100.0)
    grid.record(us(B0 + 1), 101.5)

    assert grid.at(us(B0)) == 100.0
    assert grid.at(us(B0 + 1)) == 101.5
    assert grid.last_boundary == us(B0 + 1)


def test_unknown_and_future_boundaries_are_none() -> None:
    grid = MidGrid()
    assert grid.at(us(B0)) is None  # nothing recorded
    grid.record(us(B0), 100.0)
    assert grid.at(us(B0 - 1)) is None  # before the first record
    assert grid.at(us(B0 + 1)) is None  # not recorded yet
    assert grid.at(us(B0) + 1) is None  # not a whole second


def test_record_refuses_a_non_boundary() -> None:
    with pytest.raises(ValueError, match="whole-second"):
        MidGrid().record(us(B0) + 500_000, 100.0)
    with pytest.raises(ValueError, match="whole-second"):
        MidGrid().record_until(us(B0) + 1, 100.0)


def test_first_write_wins() -> None:
    grid = MidGrid()
    grid.record_until(us(B0), 100.0)
    grid.record_until(us(B0), 105.0)  # a later call for the same boundary: ignored
    grid.record(us(B0), 106.0)
    grid.record_until(us(B0 + 2), 101.0)
    grid.record_until(us(B0 + 1), 99.0)  # older than the last: ignored

    assert grid.at(us(B0)) == 100.0
    assert grid.at(us(B0 + 1)) == 101.0
    assert grid.at(us(B0 + 2)) == 101.0


def test_record_leaves_skipped_boundaries_unknown() -> None:
    grid = MidGrid()
    grid.record(us(B0), 100.0)
    grid.record(us(B0 + 3), 103.0)

    assert [grid.at(us(B0 + k)) for k in range(4)] == [100.0, None, None, 103.0]


def test_record_until_fills_skipped_boundaries_with_the_mid() -> None:
    grid = MidGrid()
    grid.record_until(us(B0), 100.0)
    grid.record_until(us(B0 + 3), 103.0)

    assert [grid.at(us(B0 + k)) for k in range(4)] == [100.0, 103.0, 103.0, 103.0]


def test_first_record_until_does_not_invent_earlier_boundaries() -> None:
    grid = MidGrid()
    grid.record_until(us(B0), 100.0)
    assert grid.at(us(B0 - 1)) is None


def test_none_mid_is_recorded_as_unknown_and_fills_as_unknown() -> None:
    grid = MidGrid()
    grid.record_until(us(B0), 100.0)
    grid.record_until(us(B0 + 2), None)
    grid.record_until(us(B0 + 3), 101.0)

    assert [grid.at(us(B0 + k)) for k in range(4)] == [100.0, None, None, 101.0]


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_invalid_mid_is_unknown(bad: float) -> None:
    grid = MidGrid()
    grid.record(us(B0), bad)
    assert grid.at(us(B0)) is None


def test_horizon_bounds_what_is_held() -> None:
    grid = MidGrid(horizon_s=5, return_spans_s=(3,))
    for k in range(8):
        grid.record(us(B0 + k), 100.0 + k)

    assert grid.at(us(B0 + 2)) is None  # 8 boundaries written, 5 held: B0+3 .. B0+7
    assert [grid.at(us(B0 + k)) for k in range(3, 8)] == [103.0, 104.0, 105.0, 106.0, 107.0]


def test_gap_longer_than_the_horizon_writes_only_the_horizon() -> None:
    grid = MidGrid(horizon_s=5, return_spans_s=(3,))
    grid.record_until(us(B0), 100.0)
    grid.record_until(us(B0 + 1000), 120.0)

    assert grid.at(us(B0)) is None
    assert grid.at(us(B0 + 995)) is None
    assert [grid.at(us(B0 + 1000 - k)) for k in range(5)] == [120.0] * 5
    # The returns inside the filled run are ln(120/120) = 0; the one before it is unknown.
    moments = grid.return_moments(3, us(B0 + 1000), 120.0)
    assert moments == ReturnMoments(3, 0.0, 0.0)


def test_gap_longer_than_the_horizon_with_record_clears_everything() -> None:
    grid = MidGrid(horizon_s=5, return_spans_s=(3,))
    grid.record(us(B0), 100.0)
    grid.record(us(B0 + 1000), 120.0)

    assert [grid.at(us(B0 + 1000 - k)) for k in range(5)] == [120.0, None, None, None, None]
    assert grid.return_moments(3, us(B0 + 1000), 120.0).count == 0


def test_reset_forgets_everything() -> None:
    grid = MidGrid()
    grid.record(us(B0), 100.0)
    grid.reset()
    assert grid.at(us(B0)) is None
    assert grid.last_boundary is None
    grid.record(us(B0 - 10), 90.0)  # time may restart after a reset
    assert grid.at(us(B0 - 10)) == 90.0


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        MidGrid(horizon_s=1)
    with pytest.raises(ValueError):
        MidGrid(horizon_s=300, return_spans_s=(300,))  # needs horizon > span
    with pytest.raises(ValueError):
        MidGrid().return_moments(301, us(B0), 1.0)


def test_return_moments_hand_computed() -> None:
    grid = MidGrid(horizon_s=10, return_spans_s=(3,))
    grid.record(us(B0), 100.0)
    grid.record(us(B0 + 1), 101.0)
    grid.record(us(B0 + 2), 99.0)
    r1 = math.log(101.0 / 100.0)
    r2 = math.log(99.0 / 101.0)
    r3 = math.log(100.0 / 99.0)

    # Grid recorded up to t - 1 s; the return ending at t comes from the current mid.
    m = grid.return_moments(3, us(B0 + 3), 100.0)

    assert m.count == 3
    assert m.total == pytest.approx(r1 + r2 + r3, abs=1e-18)
    assert m.total_sq == pytest.approx(r1 * r1 + r2 * r2 + r3 * r3, rel=1e-14)
    assert m.std() == pytest.approx(float(np.std([r1, r2, r3], ddof=1)), rel=1e-12)


def test_return_moments_use_the_current_mid_at_t_over_the_grids() -> None:
    grid = MidGrid(horizon_s=10, return_spans_s=(2,))
    grid.record(us(B0), 100.0)
    grid.record(us(B0 + 1), 101.0)
    grid.record(us(B0 + 2), 102.0)
    expected = [math.log(101.0 / 100.0), math.log(103.0 / 101.0)]

    m = grid.return_moments(2, us(B0 + 2), 103.0)  # current mid differs from the recorded one

    assert m.count == 2
    assert m.total == pytest.approx(sum(expected), rel=1e-14)
    # An unknown current mid drops the return ending at t.
    assert grid.return_moments(2, us(B0 + 2), None).count == 1


def test_std_needs_two_returns() -> None:
    assert ReturnMoments(0, 0.0, 0.0).std() is None
    assert ReturnMoments(1, 0.01, 0.0001).std() is None
    assert ReturnMoments(1, 0.01, 0.0001).std(ddof=0) == 0.0
    assert ReturnMoments(2, 0.0, 2e-4).std() == pytest.approx(math.sqrt(2e-4))


def test_non_whole_second_t_has_no_returns() -> None:
    grid = MidGrid()
    grid.record(us(B0), 100.0)
    grid.record(us(B0 + 1), 101.0)
    assert grid.return_moments(60, us(B0 + 1) + 5, 101.0).count == 0


class GridModel:
    """The grid's contract written the obvious way: a dict of every boundary ever written."""

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon
        self.mids: dict[int, float | None] = {}
        self.last: int | None = None

    def write(self, sec: int, mid: float | None, fill: bool) -> None:
        if self.last is not None and sec <= self.last:
            return
        if self.last is not None:
            for s in range(self.last + 1, sec):
                self.mids[s] = mid if fill else None
        self.mids[sec] = mid
        self.last = sec

    def at(self, sec: int) -> float | None:
        if self.last is None or sec > self.last or sec <= self.last - self.horizon:
            return None
        return self.mids.get(sec)

    def std(self, span: int, t: int, mid_t: float | None) -> tuple[int, float | None]:
        mids = [self.at(s) for s in range(t - span, t)] + [mid_t]
        rets = [
            math.log(b / a) for a, b in itertools.pairwise(mids) if a is not None and b is not None
        ]
        return len(rets), (float(np.std(rets, ddof=1)) if len(rets) >= 2 else None)


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_return_moments_match_a_naive_model(seed: int) -> None:
    rng = np.random.default_rng(seed)
    horizon = 301
    grid = MidGrid(horizon_s=horizon, return_spans_s=(60, 300))
    model = GridModel(horizon)
    sec = B0
    mid = 30_000.0
    for step in range(2500):
        sec += int(
            rng.choice(
                [0, 1, 1, 1, 1, 2, 5, 40, 400],
                p=[0.05, 0.6, 0.1, 0.05, 0.05, 0.07, 0.04, 0.035, 0.005],
            )
        )
        mid = mid * math.exp(rng.normal(0.0, 2e-4))
        value = None if rng.random() < 0.03 else round(mid, 1)
        fill = bool(rng.random() < 0.8)
        (grid.record_until if fill else grid.record)(us(sec), value)
        model.write(sec, None if value is None else value, fill)

        if step % 5:
            continue
        # Query at the last boundary (the engine's case), one after it, or far after it.
        t = sec + int(rng.choice([0, 1, 3]))
        current = model.at(t) if t == sec and rng.random() < 0.7 else value
        for span in (60, 300, 17):  # 17 is not tracked: the scan path
            n, expected = model.std(span, t, current)
            got = grid.return_moments(span, us(t), current)
            assert got.count == n
            if expected is None:
                assert got.std() is None
            else:
                assert got.std() == pytest.approx(expected, rel=1e-9, abs=1e-15)
        for back in (1, 3, 60, 300):
            assert grid.at(us(sec - back)) == model.at(sec - back)
