"""Seeded generator of the bundled sample recording (BTCUSDT linear perpetual on Bybit).

The recording is JSON Lines, gzip, one ws-gateway envelope per line plus ``service_received_at``,
in non-decreasing service-receive order. It holds two parts:

- ``kline_hours`` of confirmed 1 m klines (one per minute), so every candle feature is warm when
- ``dense_minutes`` of live-like traffic begins: orderbook.50 (snapshot, 20 ms deltas with
  contiguous ``u``, one Bybit-side resend snapshot mid-stream), public trades, 100 ms ticker
  deltas, klines (unconfirmed every few seconds, confirmed at each minute end) and one funding
  message per minute.

Everything is drawn from ``numpy.random.Generator(PCG64)`` children of one ``SeedSequence``,
every number is kept as an integer in exchange units (price ticks of 0.1 USDT, size lots of
0.001 BTC, turnover in 1e-4 USDT) and formatted without floats, and the gzip header carries no
mtime or name: the same seed gives byte-identical output.

Market model, briefly: 1 s log returns with GARCH(1,1) variance times a slow log-normal regime
and an intraday seasonal factor; inside the dense part each second is split into 50 steps of
20 ms. The touch follows that path (spread mostly one tick, a Markov chain widens it at times).
Trades arrive as a Poisson process whose rate follows volatility and a fast activity factor;
each aggressive order fills one to several makers at the touch, and its side leans towards the
next price move.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.random import PCG64, Generator, SeedSequence

SAMPLE_FILE_NAME = "btcusdt-sample.jsonl.gz"
DEFAULT_START = datetime(2025, 1, 27, tzinfo=UTC)
DEFAULT_SEED = 42

TICKS_PER_USD = 10  # BTCUSDT linear tick size 0.1
LOTS_PER_BTC = 1_000  # qty step 0.001
BOOK_DEPTH = 50
STEP_MS = 20  # orderbook.50 push interval
STEPS_PER_S = 1_000 // STEP_MS
TICKER_MS = 100  # linear ticker push interval
MINUTE_MS = 60_000
FUNDING_INTERVAL_MS = 8 * 3_600_000
CANDLES_24H = 1_440

_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class _Model:
    """Knobs of the market model. Values are picked to look like BTCUSDT at ~100k USDT."""

    start_price: float = 100_000.0
    sigma_1s: float = 3.2e-5  # unconditional sd of 1 s log returns (~3 USDT)
    season_amplitude: float = 0.30  # intraday swing of volatility and activity, peak 15:00 UTC
    garch_alpha: float = 0.05
    garch_beta: float = 0.94
    regime_tau_s: float = 1_800.0
    regime_sd: float = 0.25
    activity_tau_s: float = 30.0
    activity_sd: float = 0.35
    orders_per_s: float = 10.0  # aggressive orders per second at average volatility
    min_orders_per_s: float = 3.0
    vol_elasticity: float = 0.7  # order rate ~ (sigma / mean sigma) ** elasticity
    fills_p: float = 0.55  # fills per aggressive order ~ Geometric(p), mean 1.8
    size_median_lots: float = 15.0
    size_sigma: float = 1.6
    max_trade_lots: int = 10_000
    side_coupling: float = 1.5  # logit of P(buy) per standardised move of the next steps
    side_horizon_steps: int = 10
    minute_volume_sd: float = 0.25
    spread_widen_p: float = 0.012  # per step, from a one-tick spread
    spread_narrow_p: float = 0.15  # per step, back to one tick
    level_median_lots: float = 1_500.0  # touch level median size (1.5 BTC)
    level_decay_levels: float = 22.0  # sizes decay as exp(-rank / this)
    level_sigma: float = 0.9
    wall_p: float = 0.02
    max_level_lots: int = 50_000
    near_fill_p: float = 0.92  # chance a tick near the touch holds a level
    far_fill_p: float = 0.75
    updates_per_side: float = 1.2  # random size changes per side per delta
    update_rank_mean: float = 6.0


@dataclass(frozen=True, slots=True)
class GenerationSummary:
    path: Path
    seed: int
    lines: int
    size_bytes: int
    counts: dict[str, int]  # lines per envelope event_type
    book_snapshots: int
    confirmed_klines: int
    first_receive_us: int  # service_received_at of the first and last lines
    last_receive_us: int
    dense_start_us: int
    dense_end_us: int

    def describe(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return (
            f"{self.path} seed={self.seed} lines={self.lines} bytes={self.size_bytes} "
            f"[{counts}] book_snapshots={self.book_snapshots} "
            f"confirmed_klines={self.confirmed_klines} "
            f"receive {_iso(self.first_receive_us)} .. {_iso(self.last_receive_us)} "
            f"dense {_iso(self.dense_start_us)} .. {_iso(self.dense_end_us)}"
        )


def default_sample_path() -> Path:
    """The packaged sample recording (may not exist yet in a fresh checkout)."""
    return Path(str(resources.files("feature_service.sample").joinpath(SAMPLE_FILE_NAME)))


# --- formatting (integers only, so output never depends on float repr) ---------------------


def _iso(us: int) -> str:
    # Python isoformat, naive UTC: the fraction is omitted when the microseconds are zero.
    return (_EPOCH + timedelta(microseconds=us)).isoformat()


def _price(ticks: int) -> str:
    return f"{ticks // 10}.{ticks % 10}0"


def _kline_price(ticks: int) -> str:
    return f"{ticks // 10}.{ticks % 10}"


def _size(lots: int) -> str:
    return f"{lots // 1000}.{lots % 1000:03d}"


def _turnover(units: int) -> str:  # 1e-4 USDT = one tick times one lot
    return f"{units // 10_000}.{units % 10_000:04d}"


def _cents(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _rate(e8: int) -> str:
    whole, frac = divmod(abs(e8), 100_000_000)
    text = f"{whole}.{frac:08d}".rstrip("0")
    if text.endswith("."):
        text += "0"
    return ("-" if e8 < 0 else "") + text


def _pct(ratio: float) -> str:
    text = f"{ratio:.4f}"
    return "0.0000" if text == "-0.0000" else text


# --- random draws ----------------------------------------------------------------------------


class _Draws:
    """Buffered scalar draws: numpy's per-call overhead dominates when drawing one at a time."""

    __slots__ = ("_ni", "_norm", "_rng", "_ui", "_uni")
    _CHUNK = 1 << 15

    def __init__(self, rng: Generator) -> None:
        self._rng = rng
        self._uni: list[float] = []
        self._ui = 0
        self._norm: list[float] = []
        self._ni = 0

    def uniform(self) -> float:
        i = self._ui
        if i == len(self._uni):
            self._uni = self._rng.random(self._CHUNK).tolist()
            i = 0
        self._ui = i + 1
        return self._uni[i]

    def normal(self) -> float:
        i = self._ni
        if i == len(self._norm):
            self._norm = self._rng.standard_normal(self._CHUNK).tolist()
            i = 0
        self._ni = i + 1
        return self._norm[i]

    def integer(self, low: int, high: int) -> int:
        """Uniform in [low, high]."""
        return low + int(self.uniform() * (high - low + 1))


class _Ids:
    """Version-4 UUID strings from a seeded stream, made in batches."""

    __slots__ = ("_buf", "_i", "_rng")
    _BATCH = 4096

    def __init__(self, rng: Generator) -> None:
        self._rng = rng
        self._buf: list[str] = []
        self._i = 0

    def next(self) -> str:
        i = self._i
        if i == len(self._buf):
            raw = self._rng.integers(0, 256, (self._BATCH, 16), dtype=np.uint8)
            raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
            raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
            self._buf = [
                f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
                for h in (row.hex() for row in (bytes(r) for r in raw))
            ]
            i = 0
        self._i = i + 1
        return self._buf[i]


# --- price path -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Path:
    sigma: np.ndarray  # per-second sd of log returns, history then dense seconds
    order_rate: np.ndarray  # aggressive orders per second
    hist_price: np.ndarray  # price at each history second boundary (hist_s + 1 points)
    step_price: np.ndarray  # price at each dense step boundary (steps + 1 points)
    step_shock: np.ndarray  # standardised shock of each dense step (steps points)


def _simulate_path(rng: Generator, m: _Model, start_s: int, hist_s: int, dense_s: int) -> _Path:
    n = hist_s + dense_s
    p0 = m.start_price * math.exp(0.01 * rng.standard_normal())
    z_hist = rng.standard_normal(hist_s)
    sub = rng.standard_normal((dense_s, STEPS_PER_S))
    z = np.concatenate([z_hist, sub.sum(axis=1) / math.sqrt(STEPS_PER_S)])
    eta = rng.standard_normal((2, n))

    tod = (start_s + np.arange(n)) % 86_400
    season = 1.0 + m.season_amplitude * np.cos(2 * np.pi * (tod - 15 * 3_600) / 86_400)

    phi_r = math.exp(-1.0 / m.regime_tau_s)
    phi_a = math.exp(-1.0 / m.activity_tau_s)
    kr = m.regime_sd * math.sqrt(1 - phi_r * phi_r)
    ka = m.activity_sd * math.sqrt(1 - phi_a * phi_a)
    omega = 1.0 - m.garch_alpha - m.garch_beta
    alpha, beta = m.garch_alpha, m.garch_beta
    h, x, y = 1.0, 0.0, 0.0
    scale = [0.0] * n
    act = [0.0] * n
    zl, e0, e1 = z.tolist(), eta[0].tolist(), eta[1].tolist()
    for s in range(n):  # GARCH is a recursion: no closed vector form
        x = phi_r * x + kr * e0[s]
        y = phi_a * y + ka * e1[s]
        scale[s] = math.sqrt(h) * math.exp(x - 0.5 * m.regime_sd**2)
        act[s] = math.exp(y - 0.5 * m.activity_sd**2)
        h = omega + (alpha * zl[s] * zl[s] + beta) * h

    sigma = m.sigma_1s * season * np.asarray(scale)
    rate = m.orders_per_s * (sigma / m.sigma_1s) ** m.vol_elasticity * np.asarray(act)
    rate = np.maximum(rate, m.min_orders_per_s)

    hist_logp = math.log(p0) + np.concatenate([[0.0], np.cumsum(sigma[:hist_s] * z_hist)])
    step_ret = (sigma[hist_s:, None] * sub / math.sqrt(STEPS_PER_S)).ravel()
    step_logp = hist_logp[-1] + np.concatenate([[0.0], np.cumsum(step_ret)])
    return _Path(sigma, rate, np.exp(hist_logp), np.exp(step_logp), sub.ravel())


# --- candles --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Candles:
    """One row per minute from the recording start: history, then dense minutes."""

    open: list[int] = field(default_factory=list)  # ticks
    high: list[int] = field(default_factory=list)
    low: list[int] = field(default_factory=list)
    close: list[int] = field(default_factory=list)
    volume: list[int] = field(default_factory=list)  # lots
    turnover: list[int] = field(default_factory=list)  # 1e-4 USDT

    def append(self, o: int, h: int, lo: int, c: int, v: int, t: int) -> None:
        self.open.append(o)
        self.high.append(h)
        self.low.append(lo)
        self.close.append(c)
        self.volume.append(v)
        self.turnover.append(t)


def _history_candles(rng: Generator, m: _Model, path: _Path, minutes: int) -> _Candles:
    p = path.hist_price
    grid = p[: minutes * 60].reshape(minutes, 60)
    closes = p[60 : minutes * 60 + 1 : 60]
    sig_min = path.sigma[: minutes * 60].reshape(minutes, 60)
    # Sub-second excursions poke past the 1 s grid extremes.
    ext = np.abs(rng.standard_normal((2, minutes))) * 0.5 * sig_min.mean(axis=1)
    highs = np.maximum(grid.max(axis=1), closes) * (1 + ext[0])
    lows = np.minimum(grid.min(axis=1), closes) * (1 - ext[1])
    fills = 1.0 / m.fills_p
    mean_size = m.size_median_lots * math.exp(0.5 * m.size_sigma**2)
    expected = path.order_rate[: minutes * 60].reshape(minutes, 60).sum(axis=1) * fills * mean_size
    noise = np.exp(m.minute_volume_sd * rng.standard_normal(minutes) - 0.5 * m.minute_volume_sd**2)
    volumes = np.maximum(np.rint(expected * noise), 1).astype(np.int64).tolist()

    out = _Candles()
    to_ticks = TICKS_PER_USD
    o_t = np.rint(grid[:, 0] * to_ticks).astype(np.int64).tolist()
    c_t = np.rint(closes * to_ticks).astype(np.int64).tolist()
    h_t = np.rint(highs * to_ticks).astype(np.int64).tolist()
    l_t = np.rint(lows * to_ticks).astype(np.int64).tolist()
    for i in range(minutes):
        o, c = o_t[i], c_t[i]
        hi, lo = max(h_t[i], o, c), min(l_t[i], o, c)
        vwap = (o + hi + lo + c) // 4
        out.append(o, hi, lo, c, volumes[i], volumes[i] * vwap)
    return out


# --- touch, trades ----------------------------------------------------------------------------


def _touch_path(rng: Generator, m: _Model, path: _Path) -> tuple[list[int], list[int]]:
    """Best bid and best ask (ticks) at each dense step: the path rounded around the spread."""
    steps = len(path.step_shock)
    u = rng.random((2, steps)).tolist()
    vol_ratio = np.repeat(path.sigma[-(steps // STEPS_PER_S) :] / m.sigma_1s, STEPS_PER_S).tolist()
    spreads = [1] * steps
    s = 1
    for k in range(steps):
        if s == 1:
            if u[0][k] < m.spread_widen_p * vol_ratio[k]:
                w = u[1][k]
                s = 2 if w < 0.6 else 3 if w < 0.9 else 4
        elif u[0][k] < m.spread_narrow_p:
            s = 1
        spreads[k] = s
    sp = np.asarray(spreads)
    bid = np.floor(path.step_price[:steps] * TICKS_PER_USD - sp / 2 + 0.5).astype(np.int64)
    return bid.tolist(), (bid + sp).tolist()


@dataclass(slots=True)
class _Trades:
    """Dense fills in match order, plus the aggressive orders (one Bybit frame each)."""

    time_ms: list[int]
    price: list[int]  # ticks
    size: list[int]  # lots
    buy: list[bool]
    order_step: list[int]  # book step of each order
    order_first: list[int]  # first fill of each order (plus a final sentinel)
    buy_lots: list[int]  # per step
    sell_lots: list[int]


def _simulate_trades(
    rng: Generator,
    m: _Model,
    path: _Path,
    step_ts: list[int],
    bids: list[int],
    asks: list[int],
) -> _Trades:
    steps = len(bids)
    rate = np.repeat(path.order_rate[-(steps // STEPS_PER_S) :], STEPS_PER_S) / STEPS_PER_S
    per_step = rng.poisson(rate)
    order_step = np.repeat(np.arange(steps), per_step)
    n_orders = len(order_step)
    ts = np.asarray(step_ts)
    width = ts[order_step + 1] - ts[order_step]
    t_order = ts[order_step] + np.floor(rng.random(n_orders) * width).astype(np.int64)
    order = np.lexsort((t_order, order_step))
    order_step, t_order = order_step[order], t_order[order]
    # Aggressors push the price: the side leans towards the move of the next ~200 ms.
    cum = np.concatenate([[0.0], np.cumsum(path.step_shock)])
    ahead = np.minimum(np.arange(steps) + m.side_horizon_steps, steps)
    drift = (cum[ahead] - cum[:steps]) / math.sqrt(m.side_horizon_steps)
    p_buy = 1.0 / (1.0 + np.exp(-m.side_coupling * drift[order_step]))
    is_buy = rng.random(n_orders) < p_buy
    n_fills = rng.geometric(m.fills_p, n_orders)
    first = np.concatenate([[0], np.cumsum(n_fills)])
    fill_order = np.repeat(np.arange(n_orders), n_fills)
    raw = np.exp(math.log(m.size_median_lots) + m.size_sigma * rng.standard_normal(len(fill_order)))
    sizes = np.clip(np.rint(raw), 1, m.max_trade_lots).astype(np.int64)
    fill_buy = is_buy[fill_order]
    fill_step = order_step[fill_order]
    prices = np.where(fill_buy, np.asarray(asks)[fill_step], np.asarray(bids)[fill_step])
    buy_lots = np.bincount(fill_step, weights=sizes * fill_buy, minlength=steps)
    sell_lots = np.bincount(fill_step, weights=sizes * ~fill_buy, minlength=steps)
    return _Trades(
        time_ms=t_order[fill_order].tolist(),
        price=prices.tolist(),
        size=sizes.tolist(),
        buy=fill_buy.tolist(),
        order_step=order_step.tolist(),
        order_first=first.tolist(),
        buy_lots=np.rint(buy_lots).astype(np.int64).tolist(),
        sell_lots=np.rint(sell_lots).astype(np.int64).tolist(),
    )


# --- order book -----------------------------------------------------------------------------


class _Side:
    """One side of the exchange-side book, in "key" space: key = price for asks and -price for
    bids, so index 0 is the touch and keys grow away from it on both sides. Every mutation goes
    through ``set`` so a step's delta is the exact difference between the previous and the new
    state of the prices it touched. A 50-entry sorted list beats a tree at this size."""

    __slots__ = ("keys", "orig", "sign", "sizes")

    def __init__(self, sign: int) -> None:
        self.sign = sign  # -1 bids, +1 asks
        self.keys: list[int] = []
        self.sizes: dict[int, int] = {}
        self.orig: dict[int, int] = {}

    def set(self, key: int, lots: int) -> None:
        sizes = self.sizes
        old = sizes.get(key, 0)
        if key not in self.orig:
            self.orig[key] = old
        if lots:
            if not old:
                bisect.insort(self.keys, key)
            sizes[key] = lots
        elif old:
            del sizes[key]
            del self.keys[bisect.bisect_left(self.keys, key)]

    def changes(self) -> list[tuple[int, int]]:
        """(price, lots) of every level that differs from the start of the step, touch first."""
        sizes, sign = self.sizes, self.sign
        return [
            (sign * k, sizes.get(k, 0))
            for k in sorted(self.orig)
            if sizes.get(k, 0) != self.orig[k]
        ]

    def levels(self) -> list[tuple[int, int]]:
        return [(self.sign * k, self.sizes[k]) for k in self.keys]


class _Book:
    """The exchange-side book, driven to a given touch each step."""

    def __init__(self, draws: _Draws, m: _Model) -> None:
        self.bids = _Side(-1)
        self.asks = _Side(+1)
        self._d = draws
        self._m = m

    def level_size(self, rank: int) -> int:
        m, d = self._m, self._d
        median = m.level_median_lots * math.exp(-rank / m.level_decay_levels)
        lots = median * math.exp(m.level_sigma * d.normal())
        if d.uniform() < m.wall_p:
            lots *= 4 + 8 * d.uniform()
        return min(max(round(lots), 1), m.max_level_lots)

    def _gap(self) -> int:
        gap = 1
        while self._d.uniform() >= self._m.far_fill_p and gap < 8:
            gap += 1
        return gap

    def fill(self, bid: int, ask: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Initial state, both sides built outward from the touch; returns the levels."""
        for side, price in ((self.bids, bid), (self.asks, ask)):
            side.keys.clear()
            side.sizes.clear()
            side.set(side.sign * price, self.level_size(0))
            self._extend(side)
        return self.bids.levels(), self.asks.levels()

    def _extend(self, side: _Side) -> None:
        keys = side.keys
        while len(keys) > BOOK_DEPTH:
            side.set(keys[-1], 0)
        while len(keys) < BOOK_DEPTH:
            side.set(keys[-1] + self._gap(), self.level_size(len(keys)))

    @staticmethod
    def _consume(side: _Side, lots: int) -> None:
        if lots and side.keys:
            best = side.keys[0]
            side.set(best, max(side.sizes[best] - lots, 0))

    def _move(self, side: _Side, best: int) -> None:
        """Make ``best`` (a key) the touch: drop what is better, fill the ticks up to it."""
        keys = side.keys
        while keys and keys[0] < best:
            side.set(keys[0], 0)
        top = keys[0] if keys else best + 1
        if top > best:
            d, fill_p = self._d, self._m.near_fill_p
            for k in range(best + 1, min(top, best + BOOK_DEPTH)):
                if d.uniform() < fill_p:
                    side.set(k, self.level_size(k - best))
            side.set(best, self.level_size(0))

    def _churn(self, side: _Side, n: int) -> None:
        """Random maker activity near the touch: resize, cancel, or join an empty tick."""
        d, m, keys = self._d, self._m, side.keys
        for _ in range(n):
            rank = min(int(-m.update_rank_mean * math.log(1.0 - d.uniform())), len(keys) - 1)
            key = keys[rank]
            action = d.uniform()
            if action < 0.8:
                side.set(key, self.level_size(rank))
            elif action < 0.9:
                if rank:
                    side.set(key, 0)
            elif keys[0] + rank + 1 not in side.sizes:
                side.set(keys[0] + rank + 1, self.level_size(rank + 1))

    def step(
        self, bid: int, ask: int, bought: int, sold: int, n_bid: int, n_ask: int
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Trades of the last interval eat the touch, the touch moves, makers act, depth is
        restored to 50 per side. Returns the changed (price, lots) per side, lots 0 = removed."""
        bids, asks = self.bids, self.asks
        bids.orig.clear()
        asks.orig.clear()
        self._consume(asks, bought)
        self._consume(bids, sold)
        self._move(bids, -bid)
        self._move(asks, ask)
        self._churn(bids, n_bid)
        self._churn(asks, n_ask)
        self._extend(bids)
        self._extend(asks)
        return bids.changes(), asks.changes()

    def touch(self) -> tuple[int, int, int, int]:
        bk, ak = self.bids.keys[0], self.asks.keys[0]
        return -bk, self.bids.sizes[bk], ak, self.asks.sizes[ak]


# --- the simulated market ---------------------------------------------------------------------


class _Running:
    """Per-fill running aggregates so any partial candle is O(1) (no rescans of a minute)."""

    def __init__(self, trades: _Trades, dense_start_ms: int) -> None:
        n = len(trades.price)
        self.hi = [0] * n
        self.lo = [0] * n
        self.cum_lots = [0] * (n + 1)
        self.cum_turn = [0] * (n + 1)
        minute = -1
        hi = lo = 0
        for i in range(n):
            p = trades.price[i]
            mi = (trades.time_ms[i] - dense_start_ms) // MINUTE_MS
            if mi != minute:
                minute, hi, lo = mi, p, p
            else:
                hi, lo = max(hi, p), min(lo, p)
            self.hi[i], self.lo[i] = hi, lo
            self.cum_lots[i + 1] = self.cum_lots[i] + trades.size[i]
            self.cum_turn[i + 1] = self.cum_turn[i] + trades.size[i] * p


@dataclass(slots=True)
class _Market:
    """Everything simulated, in exchange units; the stream builders only format and time it."""

    model: _Model
    symbol: str
    start_ms: int  # open of the first history candle
    hist_minutes: int
    dense_start_ms: int
    dense_ms: int
    path: _Path
    candles: _Candles  # history minutes, then dense minutes
    step_ts: list[int]  # book push times, plus the end of the last interval
    bids: list[int]  # touch per step, ticks
    asks: list[int]
    trades: _Trades
    ticks: list[str]  # Bybit ``L`` per fill
    run: _Running
    funding_rates: list[int]  # per dense minute, 1e-8

    @property
    def steps(self) -> int:
        return len(self.bids)

    def partial(self, minute_start: int, t_ms: int) -> tuple[int, int, int, int, int, int, int]:
        """(open, high, low, close, volume, turnover, fills) of the fills in
        [minute_start, t_ms]; with no fills, the previous close and zero volume."""
        trades, run = self.trades, self.run
        f = bisect.bisect_left(trades.time_ms, minute_start)
        e = bisect.bisect_right(trades.time_ms, t_ms) - 1
        if e < f:
            prev = self.candles.close[(minute_start - self.start_ms) // MINUTE_MS - 1]
            return prev, prev, prev, prev, 0, 0, 0
        return (
            trades.price[f],
            run.hi[e],
            run.lo[e],
            trades.price[e],
            run.cum_lots[e + 1] - run.cum_lots[f],
            run.cum_turn[e + 1] - run.cum_turn[f],
            e - f + 1,
        )


def _funding_rates(rng: Generator, minutes: int) -> list[int]:
    """Predicted funding rate per dense minute, in 1e-8 (0.0001 = 10_000)."""
    steps = np.rint(rng.normal(0.0, 40.0, minutes)).astype(np.int64)
    steps[0] = 0
    return (10_000 + np.cumsum(steps)).tolist()


def _simulate(
    seed: int, symbol: str, start_ms: int, kline_hours: int, dense_minutes: int
) -> tuple[_Market, list[Generator]]:
    m = _Model()
    hist_minutes = kline_hours * 60
    hist_s, dense_s = hist_minutes * 60, dense_minutes * 60
    dense_start_ms = start_ms + hist_s * 1_000
    dense_ms = dense_s * 1_000
    # Independent child streams: a change in one part of the model leaves the others intact.
    rngs = [Generator(PCG64(s)) for s in SeedSequence(seed).spawn(8)]
    path = _simulate_path(rngs[0], m, start_ms // 1_000, hist_s, dense_s)
    candles = _history_candles(rngs[1], m, path, hist_minutes)
    bids, asks = _touch_path(rngs[2], m, path)
    jitter = rngs[2].integers(0, 4, len(bids)).tolist()
    step_ts = [dense_start_ms + STEP_MS * k + j for k, j in enumerate(jitter)]
    step_ts.append(dense_start_ms + dense_ms)
    trades = _simulate_trades(rngs[3], m, path, step_ts, bids, asks)
    market = _Market(
        model=m,
        symbol=symbol,
        start_ms=start_ms,
        hist_minutes=hist_minutes,
        dense_start_ms=dense_start_ms,
        dense_ms=dense_ms,
        path=path,
        candles=candles,
        step_ts=step_ts,
        bids=bids,
        asks=asks,
        trades=trades,
        ticks=_tick_directions(trades.price),
        run=_Running(trades, dense_start_ms),
        funding_rates=_funding_rates(rngs[5], dense_minutes),
    )
    for j in range(dense_minutes):
        start = dense_start_ms + j * MINUTE_MS
        candles.append(*market.partial(start, start + MINUTE_MS - 1)[:6])
    return market, rngs


def _tick_directions(prices: Sequence[int]) -> list[str]:
    """Bybit ``L``: direction of the last price change, ``Zero…`` when the price repeats."""
    out: list[str] = []
    up = True
    prev = prices[0] if prices else 0
    for p in prices:
        if p != prev:
            up = p > prev
            out.append("PlusTick" if up else "MinusTick")
        else:
            out.append("ZeroPlusTick" if up else "ZeroMinusTick")
        prev = p
    return out


# --- Bybit frames -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Frame:
    """One Bybit frame as ws-gateway sees it: each payload becomes one envelope."""

    ts_ms: int
    payloads: list[dict[str, Any]]


@dataclass(slots=True)
class _Stream:
    event_type: str
    topic: str
    frames: list[_Frame] = field(default_factory=list)


@dataclass(slots=True)
class _BookOutput:
    stream: _Stream
    touch: list[tuple[int, int, int, int]]  # (bid, bid lots, ask, ask lots) after each step
    seq: list[int]  # cross sequence of each step


def _levels_json(levels: Sequence[tuple[int, int]]) -> list[list[str]]:
    return [[_price(p), _size(q) if q else "0"] for p, q in levels]


def _book_stream(mk: _Market, rng: Generator, resend_step: int) -> _BookOutput:
    """orderbook.50: a snapshot, then a delta per step that changed something (``u`` + 1 per
    message); ``resend_step`` is a full snapshot (a Bybit-side resend) that replaces whatever
    the client holds. Also the touch and the cross sequence after every step."""
    m = mk.model
    topic = f"orderbook.{BOOK_DEPTH}.{mk.symbol}"
    out = _BookOutput(_Stream("orderbook", topic), [], [])
    steps, trades = mk.steps, mk.trades
    book = _Book(_Draws(rng), m)
    n_upd = rng.poisson(m.updates_per_side, (2, steps)).tolist()
    orders_per_step = np.bincount(trades.order_step, minlength=steps)
    # Room between two book seqs for this step's match batches (the trades' seq).
    seq_inc = (2 + 2 * orders_per_step + rng.poisson(30, steps)).tolist()
    u = int(rng.integers(10_000_000, 90_000_000))
    seq = int(rng.integers(7_000_000_000, 9_000_000_000))
    for k in range(steps):
        seq += seq_inc[k]
        if k == 0:
            db, da = book.fill(mk.bids[0], mk.asks[0])
        else:
            db, da = book.step(
                mk.bids[k],
                mk.asks[k],
                trades.buy_lots[k - 1],
                trades.sell_lots[k - 1],
                n_upd[0][k],
                n_upd[1][k],
            )
        out.touch.append(book.touch())
        out.seq.append(seq)
        snapshot = k in (0, resend_step)
        if snapshot:
            db, da = book.bids.levels(), book.asks.levels()
        elif not db and not da:
            continue  # Bybit pushes only when the book changed
        u += 1
        payload = {"s": mk.symbol, "b": _levels_json(db), "a": _levels_json(da), "u": u, "seq": seq}
        payload["topic"] = topic
        payload["type"] = "snapshot" if snapshot else "delta"
        out.stream.frames.append(_Frame(mk.step_ts[k], [payload]))
    return out


def _trade_stream(mk: _Market, draws: _Draws, ids: _Ids, book_seq: list[int]) -> _Stream:
    topic = f"publicTrade.{mk.symbol}"
    stream = _Stream("trade", topic)
    trades, ticks, symbol = mk.trades, mk.ticks, mk.symbol
    first = trades.order_first
    step_first_order = last_ts = 0
    prev_step = -1
    for o, step in enumerate(trades.order_step):
        if step != prev_step:
            prev_step, step_first_order = step, o
        # One match batch, one seq: between this step's book seq and the next one.
        seq = book_seq[step] + 1 + o - step_first_order
        payloads = [
            {
                "T": trades.time_ms[i],
                "s": symbol,
                "S": "Buy" if trades.buy[i] else "Sell",
                "v": _size(trades.size[i]),
                "p": _price(trades.price[i]),
                "L": ticks[i],
                "i": ids.next(),
                "BT": False,
                "RPI": False,
                "seq": seq,
                "topic": topic,
            }
            for i in range(first[o], first[o + 1])
        ]
        # The push time trails the match by a ms or two and, like any frame ts, never goes back.
        last_ts = max(trades.time_ms[first[o]] + draws.integer(0, 2), last_ts)
        stream.frames.append(_Frame(last_ts, payloads))
    return stream


def _kline_payload(
    topic: str, start: int, c: Sequence[int], confirm: bool, ts: int
) -> dict[str, Any]:
    return {
        "start": start,
        "end": start + MINUTE_MS - 1,
        "interval": "1",
        "open": _kline_price(c[0]),
        "close": _kline_price(c[3]),
        "high": _kline_price(c[1]),
        "low": _kline_price(c[2]),
        "volume": _size(c[4]),
        "turnover": _turnover(c[5]),
        "confirm": confirm,
        "timestamp": ts,
        "topic": topic,
    }


def _kline_stream(mk: _Market, draws: _Draws) -> _Stream:
    """A confirmed candle a few ms after every minute end; in the dense part also unconfirmed
    updates every few seconds, built from the fills so far."""
    topic = f"kline.1.{mk.symbol}"
    stream = _Stream("kline", topic)
    c = mk.candles
    for i in range(len(c.open)):
        start = mk.start_ms + i * MINUTE_MS
        end = start + MINUTE_MS - 1
        if i >= mk.hist_minutes:
            t = start + draws.integer(800, 2_500)
            while t <= end:
                part = mk.partial(start, t)
                if part[6]:
                    stream.frames.append(_Frame(t, [_kline_payload(topic, start, part, False, t)]))
                t += draws.integer(1_000, 5_000)
        ts = end + 1 + draws.integer(2, 10)
        row = (c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i], c.turnover[i])
        stream.frames.append(_Frame(ts, [_kline_payload(topic, start, row, True, ts)]))
    return stream


def _next_funding_ms(t_ms: int) -> int:
    return (t_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


def _funding_stream(mk: _Market, draws: _Draws) -> _Stream:
    topic = f"fundingRate.{mk.symbol}"
    stream = _Stream("funding", topic)
    for j, rate in enumerate(mk.funding_rates):
        ts = mk.dense_start_ms + j * MINUTE_MS + draws.integer(10, 40)
        nxt = _next_funding_ms(ts)
        payload = {
            "symbol": mk.symbol,
            "fundingRate": _rate(rate),
            "fundingRateTimestamp": str(nxt - FUNDING_INTERVAL_MS),
            "nextFundingTime": str(nxt),
            "topic": topic,
        }
        stream.frames.append(_Frame(ts, [payload]))
    return stream


class _TickerState:
    """Mark, index and open interest: slow processes sampled by the ticker."""

    def __init__(self, draws: _Draws) -> None:
        self._d = draws
        self.open_interest = 55_000 * LOTS_PER_BTC + draws.integer(0, 5_000_000)
        self.basis = -300 + draws.integer(0, 200)  # index below the traded price, cents
        self.index = self.mark = 0
        self._second = -1

    def update(self, second: int, fair_usd: float) -> None:
        d = self._d
        if second != self._second:  # index and mark move about once a second
            self._second = second
            self.basis += d.integer(-20, 20)
            self.index = round(fair_usd * 100) + self.basis + d.integer(-30, 30)
            self.mark = self.index - self.basis + d.integer(-40, 40)
        if d.uniform() < 0.3:
            self.open_interest = max(self.open_interest + round(3_000 * d.normal()), 1_000_000)


def _ticker_stream(mk: _Market, draws: _Draws, touch: list[tuple[int, int, int, int]]) -> _Stream:
    """A full linear snapshot, then every 100 ms the keys that changed (plus ``symbol``)."""
    topic = f"tickers.{mk.symbol}"
    stream = _Stream("ticker", topic)
    c, trades = mk.candles, mk.trades
    # 24 h figures: the 1,439 whole candles before the current minute plus the partial one.
    vol_prefix = np.concatenate([[0], np.cumsum(c.volume)]).tolist()
    turn_prefix = np.concatenate([[0], np.cumsum(c.turnover)]).tolist()
    window_hi: list[int] = []
    window_lo: list[int] = []
    for m_abs in range(mk.hist_minutes, len(c.open)):
        first = max(0, m_abs - (CANDLES_24H - 1))
        window_hi.append(max(c.high[first:m_abs]))
        window_lo.append(min(c.low[first:m_abs]))
    state = _TickerState(draws)
    book_ts = mk.step_ts[:-1]
    last: dict[str, str] = {}
    for j in range(mk.dense_ms // TICKER_MS):
        ts = mk.dense_start_ms + j * TICKER_MS + draws.integer(4, 7)
        k = bisect.bisect_right(book_ts, ts) - 1
        bid, bid_lots, ask, ask_lots = touch[k]
        minute = (ts - mk.dense_start_ms) // MINUTE_MS
        m_abs = mk.hist_minutes + minute
        _, hi, lo, _, vol, turn, fills = mk.partial(mk.dense_start_ms + minute * MINUTE_MS, ts)
        e = bisect.bisect_right(trades.time_ms, ts) - 1
        last_price = trades.price[e] if e >= 0 else c.close[m_abs - 1]
        first = max(0, m_abs - (CANDLES_24H - 1))
        hi24 = max(window_hi[minute], hi if fills else 0, last_price)
        lo24 = min(window_lo[minute], lo if fills else window_lo[minute], last_price)
        prev24 = c.open[max(0, m_abs - CANDLES_24H)]
        state.update((ts - mk.dense_start_ms) // 1_000, float(mk.path.step_price[k]))
        fields = {
            "symbol": mk.symbol,
            "tickDirection": mk.ticks[e] if e >= 0 else "ZeroPlusTick",
            "price24hPcnt": _pct((last_price - prev24) / prev24),
            "lastPrice": _price(last_price),
            "prevPrice24h": _price(prev24),
            "highPrice24h": _price(hi24),
            "lowPrice24h": _price(lo24),
            "prevPrice1h": _price(c.open[max(0, m_abs - 60)]),
            "markPrice": _cents(state.mark),
            "indexPrice": _cents(state.index),
            "openInterest": _size(state.open_interest),
            "openInterestValue": _cents(state.open_interest * state.mark // LOTS_PER_BTC),
            "turnover24h": _turnover(turn_prefix[m_abs] - turn_prefix[first] + turn),
            "volume24h": _size(vol_prefix[m_abs] - vol_prefix[first] + vol),
            "fundingIntervalHour": "8",
            "fundingCap": "0.005",
            "nextFundingTime": str(_next_funding_ms(ts)),
            "fundingRate": _rate(mk.funding_rates[minute]),
            "bid1Price": _price(bid),
            "bid1Size": _size(bid_lots),
            "ask1Price": _price(ask),
            "ask1Size": _size(ask_lots),
            "preOpenPrice": "",
            "preQty": "",
            "curPreListingPhase": "",
        }
        if j == 0:
            payload = dict(fields)
        else:
            payload = {"symbol": mk.symbol}
            payload.update((key, val) for key, val in fields.items() if last.get(key) != val)
        last = fields
        if len(payload) > 1:
            payload["topic"] = topic
            stream.frames.append(_Frame(ts, [payload]))
    return stream


# --- transport: ws-gateway and the broker hop -------------------------------------------------


class _Wire:
    """Stamps gateway and service receive times and wraps payloads in envelopes. Each topic is
    one ordered channel (a WS topic on one connection, one RabbitMQ queue): its times never go
    backwards."""

    def __init__(self, draws: _Draws, ids: _Ids) -> None:
        self._d = draws
        self._ids = ids
        self.records: list[tuple[int, int, dict[str, Any]]] = []

    def _gateway_latency_us(self) -> int:
        # 2 ms floor plus a log-normal tail (median ~4.5 ms), capped so a kline confirmed right
        # after the minute end still arrives within ~50 ms of it.
        lat = 2_000 + 2_500 * math.exp(0.6 * self._d.normal())
        return min(int(lat), 38_000)

    def _service_latency_us(self) -> int:
        lat = 200 + 800 * math.exp(0.5 * self._d.normal())
        return min(int(lat), 15_000)

    def send(self, stream: _Stream) -> None:
        last_recv = last_srv = 0
        d, ids, records = self._d, self._ids, self.records
        for frame in stream.frames:
            ts_us = frame.ts_ms * 1_000
            recv = max(ts_us + self._gateway_latency_us(), last_recv + 1)
            last_recv = recv
            srv = max(recv + self._service_latency_us(), last_srv + 1)
            trace_id = ids.next()
            ts_iso, recv_iso = _iso(ts_us), _iso(recv)
            for payload in frame.payloads:
                envelope = {
                    "event_id": ids.next(),
                    "event_type": stream.event_type,
                    "topic": stream.topic,
                    "timestamp": ts_iso,
                    "received_at": recv_iso,
                    "payload": payload,
                    "trace_id": trace_id,
                    "service_received_at": _iso(srv),
                }
                records.append((srv, len(records), envelope))
                last_srv = srv
                srv += d.integer(5, 40)  # the gateway publishes a frame's items one by one


# --- entry points ---------------------------------------------------------------------------


def _to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000


def generate(
    out_path: str | os.PathLike[str],
    *,
    seed: int = DEFAULT_SEED,
    kline_hours: int = 25,
    dense_minutes: int = 20,
    symbol: str = "BTCUSDT",
    start: datetime = DEFAULT_START,
) -> GenerationSummary:
    """Write the sample recording to ``out_path`` (gzip) and summarise it.

    ``start`` (UTC; naive means UTC) is the open of the first history candle and must be a whole
    minute. The dense part starts ``kline_hours`` later and lasts ``dense_minutes``.
    """
    if kline_hours < 1 or dense_minutes < 1:
        raise ValueError("kline_hours and dense_minutes must be at least 1")
    start_ms = _to_ms(start)
    if start_ms % MINUTE_MS:
        raise ValueError("start must be a whole minute")

    mk, rngs = _simulate(seed, symbol, start_ms, kline_hours, dense_minutes)
    book = _book_stream(mk, rngs[4], resend_step=mk.steps // 2 + 7)
    misc = _Draws(rngs[5])
    ids = _Ids(rngs[6])
    streams = (
        _kline_stream(mk, misc),
        book.stream,
        _trade_stream(mk, misc, ids, book.seq),
        _ticker_stream(mk, misc, book.touch),
        _funding_stream(mk, misc),
    )
    wire = _Wire(_Draws(rngs[7]), ids)
    for stream in streams:
        wire.send(stream)
    records = wire.records
    records.sort(key=lambda r: (r[0], r[1]))

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    body = b"".join(orjson.dumps(r[2]) + b"\n" for r in records)
    # No name and mtime 0 in the gzip header: the bytes depend on the seed only.
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
    ):
        gz.write(body)
    os.replace(tmp, out)

    counts: dict[str, int] = {}
    for _, _, env in records:
        counts[env["event_type"]] = counts.get(env["event_type"], 0) + 1
    return GenerationSummary(
        path=out,
        seed=seed,
        lines=len(records),
        size_bytes=out.stat().st_size,
        counts=counts,
        book_snapshots=sum(f.payloads[0]["type"] == "snapshot" for f in book.stream.frames),
        confirmed_klines=len(mk.candles.open),
        first_receive_us=records[0][0],
        last_receive_us=records[-1][0],
        dense_start_us=mk.dense_start_ms * 1_000,
        dense_end_us=(mk.dense_start_ms + mk.dense_ms) * 1_000,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m feature_service.sample.generator",
        description="Generate the seeded BTCUSDT sample recording (JSON Lines, gzip).",
    )
    parser.add_argument("--out", type=Path, default=None, help="output path (default: packaged)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--kline-hours", type=int, default=25)
    parser.add_argument("--dense-minutes", type=int, default=20)
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=DEFAULT_START,
        help="open of the first candle, ISO-8601, UTC (default 2025-01-27T00:00:00)",
    )
    args = parser.parse_args(argv)
    summary = generate(
        args.out or default_sample_path(),
        seed=args.seed,
        kline_hours=args.kline_hours,
        dense_minutes=args.dense_minutes,
        symbol=args.symbol,
        start=args.start,
    )
    print(summary.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
