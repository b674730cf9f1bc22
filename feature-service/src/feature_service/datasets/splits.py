"""Split strategies (FR-013, FR-014, FR-014.3): time-based, walk-forward, random.

Rows are time-sorted, so every period is a contiguous slice found by binary search and the
splits are views of the input, not copies. Time-based and walk-forward splits always go
through the ``LeakageGuard``; the random split cannot be leak-free and says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from feature_service.datasets.leakage import LeakageGuard, Split, require_sorted, timestamps_us
from feature_service.datasets.request import (
    SPLIT_NAMES,
    DatasetBuildRequest,
    Period,
    WalkForwardConfig,
    walk_forward_windows,
)


@dataclass(slots=True)
class Splits:
    strategy: str
    train: Split
    validation: Split
    test: Split
    warnings: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Split]:
        return iter((self.train, self.validation, self.test))

    def counts(self) -> dict[str, int]:
        return {s.name: s.records for s in self}

    def info(self) -> dict[str, dict[str, object]]:
        return {s.name: s.info() for s in self}


@dataclass(slots=True)
class Fold:
    """One walk-forward fold: train [T0, T1), then validation [T1, T2); on the test fold
    (FR-014.2) the second split is named "test"."""

    index: int
    train: Split
    validation: Split
    is_test: bool = False
    skipped: bool = False
    skip_reason: str | None = None
    warnings: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Split]:
        return iter((self.train, self.validation))

    def info(self) -> dict[str, object]:
        return {
            "index": self.index,
            "role": "test" if self.is_test else "validation",
            "skipped": self.skipped,
            "skip_reason": self.skip_reason,
            "train": self.train.info(),
            "validation": self.validation.info(),
            "warnings": list(self.warnings),
        }


def _slice(df: pd.DataFrame, ts: np.ndarray, period: Period) -> pd.DataFrame:
    lo, hi = np.searchsorted(ts, [period.start_us, period.end_us])
    return df.iloc[int(lo) : int(hi)]


def _sorted_ts(df: pd.DataFrame) -> np.ndarray:
    ts = timestamps_us(df)
    require_sorted(ts)
    return ts


def _explain_empty(
    split: Split, before: int, prev: str | None, nxt: str | None, guard: LeakageGuard
) -> str | None:
    """T255: say why a split came out empty, and record the reason code on it."""
    if split.records:
        return None
    period = split.period.to_dict() if split.period is not None else None
    if before == 0:
        split.empty_reason = "no_data_in_period"
        where = f" [{period['start']}, {period['end']})" if period else ""
        return f"{split.name} split is empty: no feature rows in its period{where} (no data)"
    if split.embargoed == before:
        split.empty_reason = "embargo"
        return (
            f"{split.name} split is empty: all its {before} rows fell inside the embargo of "
            f"{guard.embargo_s} s after {prev} (the longest feature lookback)"
        )
    if split.purged == before:
        split.empty_reason = "purge"
        return (
            f"{split.name} split is empty: all its {before} rows were purged, their "
            f"{guard.horizon_s} s label window reaching into {nxt}"
        )
    split.empty_reason = "purge_and_embargo"
    return (
        f"{split.name} split is empty: of its {before} rows, {split.embargoed} fell inside the "
        f"{guard.embargo_s} s embargo and {split.purged} were purged ({guard.horizon_s} s horizon)"
    )


def _guard(raw: Sequence[Split], guard: LeakageGuard) -> tuple[list[Split], list[str]]:
    guarded = guard.apply(raw)
    return guarded, empty_warnings(guarded, [s.records for s in raw], guard)


def empty_warnings(
    guarded: Sequence[Split], before: Sequence[int], guard: LeakageGuard
) -> list[str]:
    """Why each guarded split came out empty (``before``: its rows before purge and embargo);
    sets each empty split's ``empty_reason``."""
    warnings: list[str] = []
    for i, (split, count) in enumerate(zip(guarded, before, strict=True)):
        prev = guarded[i - 1].name if i > 0 else None
        nxt = guarded[i + 1].name if i + 1 < len(guarded) else None
        message = _explain_empty(split, count, prev, nxt, guard)
        if message:
            warnings.append(message)
    return warnings


def time_based_split(df: pd.DataFrame, req: DatasetBuildRequest, guard: LeakageGuard) -> Splits:
    """Cut ``df`` (one symbol and interval, time-sorted) into the request's three periods,
    then purge and embargo. Rows outside every period (warm-up, label look-ahead) are left
    out."""
    periods = req.periods()
    missing = [name for name in SPLIT_NAMES if name not in periods]
    if missing:
        raise ValueError(f"time_based split needs the {', '.join(missing)} period(s)")
    ts = _sorted_ts(df)
    raw = [Split(name, _slice(df, ts, periods[name]), periods[name]) for name in SPLIT_NAMES]
    (train, validation, test), warnings = _guard(raw, guard)
    return Splits("time_based", train, validation, test, warnings)


def walk_forward_folds(
    df: pd.DataFrame, cfg: WalkForwardConfig, horizon_s: int, embargo_s: int
) -> list[Fold]:
    """Every fold of ``cfg`` (see ``walk_forward_windows``), purged and embargoed. A fold with
    fewer than ``min_train_samples`` train rows left after the purge, or with no validation
    rows left, is kept in the list, marked skipped with the reason. With
    ``last_fold_as_test`` the last fold not skipped is the test fold."""
    guard = LeakageGuard(horizon_s, embargo_s)
    ts = _sorted_ts(df)
    folds: list[Fold] = []
    for index, (train_p, val_p) in enumerate(walk_forward_windows(cfg)):
        raw = [
            Split("train", _slice(df, ts, train_p), train_p),
            Split("validation", _slice(df, ts, val_p), val_p),
        ]
        (train, validation), warnings = _guard(raw, guard)
        folds.append(make_fold(index, train, validation, warnings, cfg))
    if cfg.last_fold_as_test:
        mark_test_fold(folds)
    return folds


def make_fold(
    index: int, train: Split, validation: Split, warnings: list[str], cfg: WalkForwardConfig
) -> Fold:
    """A fold from its guarded splits, marked skipped (with the reason) when too small."""
    fold = Fold(index, train, validation, warnings=warnings)
    if train.records < cfg.min_train_samples:
        fold.skipped = True
        fold.skip_reason = (
            f"{train.records} train rows after the purge, fewer than min_train_samples "
            f"{cfg.min_train_samples}"
        )
    elif not validation.records:
        fold.skipped = True
        fold.skip_reason = "no validation rows left (see the fold's warnings)"
    return fold


def mark_test_fold(folds: list[Fold]) -> None:
    used = [f for f in folds if not f.skipped]
    if not used:
        return
    test = used[-1]
    test.is_test = True
    test.validation.name = "test"
    test.warnings = [w.replace("validation split", "test split", 1) for w in test.warnings]
    assert test.validation.period is not None
    start = test.validation.period.start_us
    overlapping = [
        f.index
        for f in used[:-1]
        if f.validation.period is not None and f.validation.period.end_us > start
    ]
    if overlapping:
        test.warnings.append(
            f"the validation windows of folds {overlapping} overlap the test window (step_days "
            f"is shorter than validation_window_days): do not select models on those folds"
        )


def walk_forward_warnings(folds: Sequence[Fold]) -> list[str]:
    """Every fold's warnings and skip reasons, prefixed with the fold index."""
    out: list[str] = []
    for fold in folds:
        if fold.skipped:
            out.append(f"fold {fold.index} skipped: {fold.skip_reason}")
        out.extend(f"fold {fold.index}: {w}" for w in fold.warnings)
    if folds and all(f.skipped for f in folds):
        out.append("every walk-forward fold was skipped")
    return out


def walk_forward_counts(folds: Sequence[Fold]) -> dict[str, int]:
    """Record totals over the folds used (rows repeat across folds whose windows overlap):
    train over every used fold, validation over the non-test ones, test from the test fold."""
    counts = {"train": 0, "validation": 0, "test": 0}
    for fold in folds:
        if fold.skipped:
            continue
        counts["train"] += fold.train.records
        counts["test" if fold.is_test else "validation"] += fold.validation.records
    return counts


def random_split(
    df: pd.DataFrame,
    fractions: Sequence[float],
    seed: int,
    period: Period | None = None,
) -> Splits:
    """FR-014.3, testing only: a seeded random assignment of rows to train / validation /
    test in the given fractions (a missing test fraction is the remainder); each split
    keeps time order. Counts are exact: round(n * fraction) for train and validation."""
    ts = _sorted_ts(df)
    if period is not None:
        df = _slice(df, ts, period)
    label = random_labels(len(df), fractions, seed)
    parts = [Split(name, df.iloc[np.flatnonzero(label == k)]) for k, name in enumerate(SPLIT_NAMES)]
    return Splits("random", parts[0], parts[1], parts[2], random_warnings(parts))


def random_labels(n: int, fractions: Sequence[float], seed: int) -> np.ndarray:
    """The split (0 train, 1 validation, 2 test) of each of ``n`` time-sorted rows: one byte
    per row, so a streamed build can hold it for any period."""
    if len(fractions) not in (2, 3) or any(f < 0 for f in fractions):
        raise ValueError("fractions: (train, validation[, test]), each >= 0")
    if sum(fractions[:2]) > 1 + 1e-12 or (len(fractions) == 3 and abs(sum(fractions) - 1) > 1e-9):
        raise ValueError("fractions must add up to at most 1 (exactly 1 when test is given)")
    n_train = round(n * fractions[0])
    n_val = min(round(n * fractions[1]), n - n_train)
    label = np.full(n, 2, dtype=np.int8)
    order = np.random.default_rng(seed).permutation(n)
    label[order[:n_train]] = 0
    label[order[n_train : n_train + n_val]] = 1
    return label


def random_warnings(parts: Sequence[Split]) -> list[str]:
    """The random split's warnings; sets each empty split's ``empty_reason``."""
    warnings = [
        "random split: train, validation and test rows interleave in time, so the splits are "
        "not leak-free; for testing only (FR-014.3)"
    ]
    for split in parts:
        if not split.records:
            split.empty_reason = "no_data_in_period"
            warnings.append(f"{split.name} split is empty")
    return warnings
