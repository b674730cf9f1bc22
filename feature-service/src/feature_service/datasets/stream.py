"""Streamed splits: labelled rows arrive in time-sorted batches and go straight to their files.

The whole-frame functions of ``splits`` cut one frame; here the same cuts apply batch by batch.
Purge and embargo depend only on the split boundaries, never on neighbouring rows, so every
row gets the same decision as in the whole frame, and each split's rows are appended to its
file in the same order. Only counts and each split's first and last timestamp are kept (the
leakage check reads nothing else), so memory does not grow with the period. ``close()`` gives
the same ``Splits`` / ``Fold`` bookkeeping as the whole-frame functions, with summary splits
(``Split.count``) in place of frames.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from feature_service.datasets.leakage import LeakageGuard, Split, timestamps_us
from feature_service.datasets.output import SplitWriter
from feature_service.datasets.request import (
    SPLIT_NAMES,
    DatasetBuildRequest,
    OutputFormat,
    Period,
    RandomSplitConfig,
    WalkForwardConfig,
    walk_forward_windows,
)
from feature_service.datasets.splits import (
    Fold,
    Splits,
    empty_warnings,
    make_fold,
    mark_test_fold,
    random_labels,
    random_warnings,
)


class SplitSink:
    """One split file, fed in time order; the file is opened with its first rows."""

    def __init__(self, name: str, period: Period | None, base: Path, fmt: OutputFormat) -> None:
        self.name = name
        self.period = period
        self._base = base
        self._fmt: OutputFormat = fmt
        self._writer: SplitWriter | None = None
        self.path: Path | None = None  # set once closed
        self.before = 0  # rows in the period before purge and embargo
        self.records = 0
        self.purged = 0
        self.embargoed = 0
        self._first: int | None = None
        self._last: int | None = None

    def add(self, guarded: Split, before: int) -> None:
        self.before += before
        self.purged += guarded.purged
        self.embargoed += guarded.embargoed
        self.write(guarded.frame)

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        if self._writer is None:
            self._writer = SplitWriter(self._base, self._fmt)
        self._writer.write(frame)
        ts = timestamps_us(frame)
        if self._first is None:
            self._first = int(ts[0])
        self._last = int(ts[-1])
        self.records += len(frame)

    def close(self, template: pd.DataFrame) -> Path:
        """Finish the file; a split that got no rows is written empty from ``template`` (a
        zero-row frame of the dataset's columns and dtypes), as the whole-frame build does."""
        if self.path is None:
            if self._writer is None:
                self._writer = SplitWriter(self._base, self._fmt)
                self._writer.write(template.iloc[0:0])
            self.path = self._writer.close()
        return self.path

    def abort(self) -> None:
        if self._writer is not None and self.path is None:
            self._writer.abort()

    def summary(self) -> Split:
        stamps = [] if self._first is None else sorted({self._first, self._last or self._first})
        frame = pd.DataFrame({"timestamp": np.array(stamps, dtype=np.int64)})
        return Split(self.name, frame, self.period, self.purged, self.embargoed, count=self.records)


class _Stream:
    def __init__(self, out_dir: Path, fmt: OutputFormat) -> None:
        self.out_dir = out_dir
        self.fmt: OutputFormat = fmt
        self.sinks: list[SplitSink] = []
        self.template: pd.DataFrame | None = None

    def sink(self, name: str, period: Period | None, file: str | None = None) -> SplitSink:
        sink = SplitSink(name, period, self.out_dir / (file or name), self.fmt)
        self.sinks.append(sink)
        return sink

    def feed(self, frame: pd.DataFrame) -> None:
        if self.template is None:
            self.template = frame.iloc[0:0]
        if not frame.empty:
            self._feed(frame, timestamps_us(frame))

    def _feed(self, frame: pd.DataFrame, ts: np.ndarray) -> None:
        raise NotImplementedError

    def _close_all(self) -> None:
        if self.template is None:
            raise ValueError("no rows were fed: the dataset's columns are unknown")
        for sink in self.sinks:
            sink.close(self.template)

    def abort(self) -> None:
        for sink in self.sinks:
            sink.abort()


def _slice(frame: pd.DataFrame, ts: np.ndarray, period: Period) -> pd.DataFrame:
    lo, hi = np.searchsorted(ts, [period.start_us, period.end_us])
    return frame.iloc[int(lo) : int(hi)]


def _guarded(
    sinks: list[SplitSink], frame: pd.DataFrame, ts: np.ndarray, guard: LeakageGuard
) -> None:
    raw: list[Split] = []
    for sink in sinks:
        assert sink.period is not None  # time-based and walk-forward splits have periods
        raw.append(Split(sink.name, _slice(frame, ts, sink.period), sink.period))
    for sink, cut, original in zip(sinks, guard.apply(raw), raw, strict=True):
        sink.add(cut, original.records)


class TimeBasedStream(_Stream):
    """``time_based_split`` batch by batch."""

    def __init__(
        self, req: DatasetBuildRequest, guard: LeakageGuard, out_dir: Path, fmt: OutputFormat
    ) -> None:
        super().__init__(out_dir, fmt)
        periods = req.periods()
        missing = [name for name in SPLIT_NAMES if name not in periods]
        if missing:
            raise ValueError(f"time_based split needs the {', '.join(missing)} period(s)")
        self.guard = guard
        for name in SPLIT_NAMES:
            self.sink(name, periods[name])

    def _feed(self, frame: pd.DataFrame, ts: np.ndarray) -> None:
        _guarded(self.sinks, frame, ts, self.guard)

    def close(self) -> tuple[Splits, dict[str, Path]]:
        self._close_all()
        parts = [s.summary() for s in self.sinks]
        warnings = empty_warnings(parts, [s.before for s in self.sinks], self.guard)
        files = {s.name: s.close(self.template) for s in self.sinks}  # type: ignore[arg-type]
        return Splits("time_based", parts[0], parts[1], parts[2], warnings), files


class WalkForwardStream(_Stream):
    """``walk_forward_folds`` batch by batch. A fold's files are closed once the rows have
    passed its validation window (few files are open at once, whatever the number of folds);
    at the end the test fold's validation file is renamed ``test`` and skipped folds' files
    are removed."""

    def __init__(
        self,
        cfg: WalkForwardConfig,
        horizon_s: int,
        embargo_s: int,
        out_dir: Path,
        fmt: OutputFormat,
    ) -> None:
        super().__init__(out_dir, fmt)
        self.cfg = cfg
        self.guard = LeakageGuard(horizon_s, embargo_s)
        self.folds = [
            (
                self.sink("train", train, f"fold_{i}_train"),
                self.sink("validation", val, f"fold_{i}_validation"),
            )
            for i, (train, val) in enumerate(walk_forward_windows(cfg))
        ]

    def _feed(self, frame: pd.DataFrame, ts: np.ndarray) -> None:
        first, last = int(ts[0]), int(ts[-1])
        for train, validation in self.folds:
            assert train.period is not None and validation.period is not None
            if validation.path is not None or last < train.period.start_us:
                continue  # closed already, or not reached yet
            if first < validation.period.end_us:
                _guarded([train, validation], frame, ts, self.guard)
            if last >= validation.period.end_us:
                assert self.template is not None
                train.close(self.template)
                validation.close(self.template)

    def close(self) -> tuple[list[Fold], dict[str, Path]]:
        self._close_all()
        folds: list[Fold] = []
        for index, sinks in enumerate(self.folds):
            train, validation = (s.summary() for s in sinks)
            warnings = empty_warnings([train, validation], [s.before for s in sinks], self.guard)
            folds.append(make_fold(index, train, validation, warnings, self.cfg))
        if self.cfg.last_fold_as_test:
            mark_test_fold(folds)
        files: dict[str, Path] = {}
        for fold, sinks in zip(folds, self.folds, strict=True):
            for split, sink in zip(fold, sinks, strict=True):
                assert sink.path is not None
                if fold.skipped:
                    sink.path.unlink(missing_ok=True)
                    continue
                name = f"fold_{fold.index}_{split.name}"
                path = sink.path.with_name(name + sink.path.suffix)
                if path != sink.path:
                    os.replace(sink.path, path)
                files[name] = path
        return folds, files


class RandomStream(_Stream):
    """``random_split`` batch by batch; ``rows`` is the number of labelled rows in ``period``,
    counted beforehand (the assignment is a permutation of all of them)."""

    def __init__(
        self, rnd: RandomSplitConfig, period: Period, rows: int, out_dir: Path, fmt: OutputFormat
    ) -> None:
        super().__init__(out_dir, fmt)
        fractions = (rnd.train_fraction, rnd.validation_fraction, rnd.test_fraction)
        self.labels = random_labels(rows, fractions, rnd.seed)
        self.period = period
        self.offset = 0
        for name in SPLIT_NAMES:
            self.sink(name, None)

    def _feed(self, frame: pd.DataFrame, ts: np.ndarray) -> None:
        part = _slice(frame, ts, self.period)
        labels = self.labels[self.offset : self.offset + len(part)]
        if len(labels) != len(part):
            raise ValueError("more rows in the period than were counted")
        self.offset += len(part)
        for k, sink in enumerate(self.sinks):
            sink.write(part.iloc[np.flatnonzero(labels == k)])

    def close(self) -> tuple[Splits, dict[str, Path]]:
        if self.offset != len(self.labels):
            raise ValueError(f"{len(self.labels)} rows were counted, {self.offset} fed")
        self._close_all()
        parts = [s.summary() for s in self.sinks]
        files = {s.name: s.close(self.template) for s in self.sinks}  # type: ignore[arg-type]
        return Splits("random", parts[0], parts[1], parts[2], random_warnings(parts)), files
