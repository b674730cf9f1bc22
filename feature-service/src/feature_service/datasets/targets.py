"""Targets (FR-010, FR-011, FR-011.2): labels built only from rows strictly after the row.

The forward return of the row at t is r(t) = mid(t + horizon) / mid(t) - 1, where mid(t +
horizon) is the ``mid_price`` of the row whose timestamp is exactly t + horizon. A row without
such a row (past the end of the data, or in a gap) or with a null mid at either end is
dropped — never filled — so no label is ever guessed. Where a row has no mid (a history without
an order book), its ``reference_price`` column, when present, is used instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from feature_service.datasets.leakage import require_sorted, timestamps_us
from feature_service.datasets.request import RISK_VOLATILITY_FEATURE, TargetConfig

TARGET = "target"
TARGET_RETURN = "target_return"
REFERENCE_PRICE = "reference_price"
ZERO_VOLATILITY = 1e-12
_US = 1_000_000


def _check_horizon(cfg: TargetConfig, interval_s: int) -> None:
    if interval_s <= 0 or cfg.horizon % interval_s:
        raise ValueError(
            f"target horizon {cfg.horizon} s must be a positive multiple of the row interval "
            f"{interval_s} s"
        )


def _forward_return(ts: np.ndarray, mid: np.ndarray, horizon_s: int) -> np.ndarray:
    """r per row, NaN where the row at exactly t + horizon is absent or either mid is null."""
    n = ts.size
    want = ts + horizon_s * _US
    pos = np.searchsorted(ts, want)
    found = pos < n
    found[found] = ts[pos[found]] == want[found]
    future = np.full(n, np.nan)
    future[found] = mid[pos[found]]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = future / mid - 1.0
    r[~np.isfinite(r)] = np.nan
    return r


def _label(df: pd.DataFrame, r: np.ndarray, cfg: TargetConfig) -> tuple[np.ndarray, np.ndarray]:
    """(target per row, which rows have one); ``r`` is NaN where no return exists."""
    valid = ~np.isnan(r)
    if cfg.type == "regression":
        return r, valid
    if cfg.type == "classification":
        thr = cfg.threshold
        # |r| == thr is flat (FR-011.1)
        return np.where(r > thr, "up", np.where(r < -thr, "down", "flat")), valid
    if RISK_VOLATILITY_FEATURE not in df.columns:
        raise ValueError(f"risk_adjusted targets need the {RISK_VOLATILITY_FEATURE} column")
    sigma = df[RISK_VOLATILITY_FEATURE].to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = r / (sigma * np.sqrt(cfg.horizon))
    out[sigma < ZERO_VOLATILITY] = 0.0  # a flat past has no risk to scale by (FR-011.2)
    # an unknown volatility gives no label: the row is dropped, not guessed
    return out, valid & ~np.isnan(sigma)


def _target_rows(
    df: pd.DataFrame, ts: np.ndarray, cfg: TargetConfig, resolvable: np.ndarray | None = None
) -> tuple[pd.DataFrame, int]:
    mid = df["mid_price"].to_numpy(dtype=float, na_value=np.nan)
    if REFERENCE_PRICE in df.columns:
        # No book in this history (backfilled klines, imported trades): the last trade price
        # or candle close known at the row's time stands in for the mid.
        ref = df[REFERENCE_PRICE].to_numpy(dtype=float, na_value=np.nan)
        mid = np.where(np.isnan(mid), ref, mid)
    r = _forward_return(ts, mid, cfg.horizon)
    target, keep = _label(df, r, cfg)
    considered = df.shape[0]
    if resolvable is not None:
        keep &= resolvable
        considered = int(resolvable.sum())
    kept = int(keep.sum())
    if bool(keep[:kept].all()):
        # the usual case, only the tail lacks a future: a slice, not a copy of every column
        out = df.iloc[:kept].reset_index(drop=True)
    else:
        out = df.loc[keep].reset_index(drop=True)
    out[TARGET_RETURN] = r[keep]
    out[TARGET] = target[keep]
    return out, considered - len(out)


def add_targets(df: pd.DataFrame, cfg: TargetConfig, interval_s: int) -> tuple[pd.DataFrame, int]:
    """Return (rows that have a label, with ``target_return`` and ``target`` appended; how many
    rows were dropped for lack of one). ``df`` holds one symbol and interval, time-sorted."""
    _check_horizon(cfg, interval_s)
    ts = timestamps_us(df)
    require_sorted(ts)
    return _target_rows(df, ts, cfg)


def iter_targets(
    batches: Iterable[pd.DataFrame], cfg: TargetConfig, interval_s: int
) -> Iterator[tuple[pd.DataFrame, int]]:
    """``add_targets`` over consecutive time-sorted batches without holding them all: rows
    whose t + horizon lies beyond a batch wait for the next one (at most horizon / interval
    rows are carried). Yields (labelled rows, dropped) per batch; the stream's last rows with
    no future are counted as dropped in the final yield."""
    _check_horizon(cfg, interval_s)
    carry: pd.DataFrame | None = None
    last_ts: int | None = None
    for batch in batches:
        if batch.empty:
            continue
        bts = timestamps_us(batch)
        require_sorted(bts, "batch")
        if last_ts is not None and bts[0] <= last_ts:
            raise ValueError("batches must follow each other in time")
        last_ts = int(bts[-1])
        frame = batch if carry is None or carry.empty else pd.concat([carry, batch])
        ts = bts if frame is batch else timestamps_us(frame)
        resolvable = ts + cfg.horizon * _US <= last_ts
        labelled, dropped = _target_rows(frame, ts, cfg, resolvable)
        carry = frame.loc[~resolvable]
        yield labelled, dropped
    if carry is not None and not carry.empty:
        # the stream ended: these rows will never see their t + horizon
        none = np.zeros(len(carry), dtype=bool)
        empty, _ = _target_rows(carry, timestamps_us(carry), cfg, none)
        yield empty, len(carry)
