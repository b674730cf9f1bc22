"""Split files: round trips, byte-identical rewrites, batches, empty splits, hashes."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from feature_service.datasets.output import (
    SplitWriter,
    content_hash,
    read_split,
    write_split,
)

FORMATS = ("parquet", "csv", "hdf5")
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def sample(n: int = 6, offset: int = 0) -> pd.DataFrame:
    seconds = np.arange(offset, offset + n)
    return pd.DataFrame(
        {
            "timestamp": (T0 + pd.to_timedelta(seconds, unit="s")).as_unit("us"),
            "symbol": "BTCUSDT",
            "interval_s": np.ones(n, dtype=np.int64),
            "mid_price": 100.0 + seconds / 3,
            "volatility_1m": [np.nan if s % 4 == 0 else 0.1 + 0.2 for s in seconds],
            "trade_count_3s": seconds.astype(np.int64) * 2,
            "stale": seconds % 2 == 0,
            "target": ["up"] * n,
        }
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_values(tmp_path: Path, fmt: str) -> None:
    df = sample()
    df.loc[3, "target"] = "flat"
    path = write_split(df, tmp_path / "train", fmt)  # type: ignore[arg-type]
    assert path.name == {"parquet": "train.parquet", "csv": "train.csv", "hdf5": "train.h5"}[fmt]
    back = read_split(path)
    assert list(back.columns) == list(df.columns)
    assert back["timestamp"].tolist() == df["timestamp"].tolist()
    assert back["target"].tolist() == df["target"].tolist()
    assert back["trade_count_3s"].tolist() == df["trade_count_3s"].tolist()
    assert back["stale"].tolist() == df["stale"].tolist()
    # exact floats (csv writes the shortest repr that round-trips) and NaN as NaN
    np.testing.assert_array_equal(back["mid_price"].to_numpy(), df["mid_price"].to_numpy())
    np.testing.assert_array_equal(
        back["volatility_1m"].to_numpy(dtype=float), df["volatility_1m"].to_numpy()
    )
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_two_writes_give_identical_bytes(tmp_path: Path, fmt: str) -> None:
    df = sample(50)
    first = write_split(df, tmp_path / "a" / "train", fmt)  # type: ignore[arg-type]
    if fmt == "hdf5":
        time.sleep(1.1)  # HDF5 object times have 1 s resolution: they would now differ
    second = write_split(df.copy(), tmp_path / "b" / "train", fmt)  # type: ignore[arg-type]
    assert first.read_bytes() == second.read_bytes()
    assert content_hash(first) == content_hash(second)


def test_csv_text_is_fixed(tmp_path: Path) -> None:
    df = sample(2)
    path = write_split(df, tmp_path / "test", "csv")
    assert path.read_text() == (
        "timestamp,symbol,interval_s,mid_price,volatility_1m,trade_count_3s,stale,target\n"
        "2024-01-01T00:00:00.000000Z,BTCUSDT,1,100.0,,0,True,up\n"
        "2024-01-01T00:00:01.000000Z,BTCUSDT,1,100.33333333333333,0.30000000000000004,2,False,up\n"
    )


def test_csv_timestamps_are_written_in_utc(tmp_path: Path) -> None:
    df = sample(1)
    df["timestamp"] = df["timestamp"].dt.tz_convert("America/New_York")
    path = write_split(df, tmp_path / "x", "csv")
    assert path.read_text().splitlines()[1].startswith("2024-01-01T00:00:00.000000Z,")


def test_parquet_uses_zstd_and_no_write_time(tmp_path: Path) -> None:
    path = write_split(sample(), tmp_path / "train", "parquet")
    meta = pq.ParquetFile(path).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert set(meta.metadata) == {b"pandas", b"ARROW:schema"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_batches_equal_one_frame_and_are_deterministic(tmp_path: Path, fmt: str) -> None:
    def write(directory: str) -> Path:
        with SplitWriter(tmp_path / directory / "validation", fmt) as writer:  # type: ignore[arg-type]
            writer.write(sample(4, 0))
            # a later batch with a longer label than any seen before (hdf5 string sizing)
            later = sample(5, 4)
            later["target"] = "flat"
            writer.write(later)
        assert writer.rows == 9
        return writer.path

    a, b = write("a"), write("b")
    assert a.read_bytes() == b.read_bytes()
    back = read_split(a)
    assert len(back) == 9
    assert back["target"].tolist() == ["up"] * 4 + ["flat"] * 5
    assert back["trade_count_3s"].tolist() == [2 * i for i in range(9)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_split_still_gets_a_file_with_its_columns(tmp_path: Path, fmt: str) -> None:
    empty = sample().iloc[0:0]
    first = write_split(empty, tmp_path / "a" / "test", fmt)  # type: ignore[arg-type]
    second = write_split(empty, tmp_path / "b" / "test", fmt)  # type: ignore[arg-type]
    assert first.read_bytes() == second.read_bytes()
    back = read_split(first)
    assert back.empty
    assert list(back.columns) == list(empty.columns)


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), SplitWriter(tmp_path / "train", "parquet") as writer:
        writer.write(sample())
        raise RuntimeError("build failed")
    assert list(tmp_path.iterdir()) == []


def test_writer_without_frames_refuses_to_close(tmp_path: Path) -> None:
    writer = SplitWriter(tmp_path / "train", "csv")
    with pytest.raises(ValueError, match="no frame"):
        writer.close()


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        SplitWriter(tmp_path / "train", "xlsx")  # type: ignore[arg-type]


def test_content_hash_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 5000  # larger than one read chunk
    path.write_bytes(payload)
    assert content_hash(path, chunk_size=4096) == hashlib.sha256(payload).hexdigest()
    changed = write_split(sample(), tmp_path / "one", "csv")
    other = sample()
    other.loc[0, "mid_price"] = 1.5
    assert content_hash(changed) != content_hash(write_split(other, tmp_path / "two", "csv"))
