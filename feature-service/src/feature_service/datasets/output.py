"""Split files (parquet, csv, hdf5) with deterministic bytes, and their content hashes.

The same frames written in the same batches give byte-identical files, so a manifest's
hashes reproduce: parquet carries no write time and a fixed codec and level, csv uses the
shortest round-trip float repr and ISO-8601 UTC timestamps, hdf5 tables are created without
HDF5's object timestamps. Files appear atomically (written aside, then renamed).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_service.datasets.request import OutputFormat

EXTENSIONS: dict[str, str] = {"parquet": ".parquet", "csv": ".csv", "hdf5": ".h5"}
HDF_KEY = "data"
PARQUET_COMPRESSION = "zstd"
PARQUET_LEVEL = 3
HDF_COMPLIB = "blosc:zstd"
HDF_LEVEL = 5
CSV_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Room for any symbol (<= 20) and target label in hdf5's fixed-width string columns, which
# are sized by the first batch.
HDF_MIN_ITEMSIZE = 32


def split_path(path_without_ext: Path | str, fmt: OutputFormat) -> Path:
    return Path(f"{path_without_ext}{EXTENSIONS[fmt]}")


class SplitWriter:
    """Writes one split file from one frame or consecutive batches with the same columns."""

    def __init__(self, path_without_ext: Path | str, fmt: OutputFormat) -> None:
        if fmt not in EXTENSIONS:
            raise ValueError(f"unknown output format {fmt!r}")
        self.fmt = fmt
        self.path = split_path(path_without_ext, fmt)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".partial")
        self._tmp.unlink(missing_ok=True)
        self._rows = 0
        self._started = False
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._hdf: pd.HDFStore | None = None
        self._string_cols: dict[str, int] = {}
        self._closed = False

    @property
    def rows(self) -> int:
        return self._rows

    def write(self, df: pd.DataFrame) -> None:
        if self._closed:
            raise RuntimeError("writer is closed")
        # One running row index across batches (only hdf5 stores it)
        df = df.set_axis(pd.RangeIndex(self._rows, self._rows + len(df)), axis=0)
        if self.fmt == "parquet":
            self._write_parquet(df)
        elif self.fmt == "csv":
            self._write_csv(df)
        else:
            self._write_hdf(df)
        self._rows += len(df)
        self._started = True

    def close(self) -> Path:
        """Finish the file and move it into place; a writer given no frame writes nothing
        and raises (there is no schema to write)."""
        if self._closed:
            return self.path
        if not self._started:
            raise ValueError(f"{self.path.name}: no frame was written")
        if self._parquet is not None:
            self._parquet.close()
        if self._hdf is not None:
            self._hdf.close()
        self._closed = True
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._hdf is not None:
            self._hdf.close()
        self._closed = True
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _write_parquet(self, df: pd.DataFrame) -> None:
        if self._schema is None:
            table = pa.Table.from_pandas(df, preserve_index=False)
            self._schema = table.schema
            self._parquet = pq.ParquetWriter(
                self._tmp,
                self._schema,
                compression=PARQUET_COMPRESSION,
                compression_level=PARQUET_LEVEL,
            )
        else:
            # later batches are cast to the first one's schema (e.g. an all-null column)
            table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
        assert self._parquet is not None
        self._parquet.write_table(table)

    def _write_csv(self, df: pd.DataFrame) -> None:
        df = _in_utc(df)
        df.to_csv(
            self._tmp,
            mode="a" if self._started else "w",
            header=not self._started,
            index=False,
            na_rep="",
            lineterminator="\n",
            date_format=CSV_DATE_FORMAT,
            encoding="utf-8",
        )

    def _write_hdf(self, df: pd.DataFrame) -> None:
        if self._hdf is None:
            self._hdf = pd.HDFStore(self._tmp, mode="w", complevel=HDF_LEVEL, complib=HDF_COMPLIB)
            self._string_cols = {
                c: HDF_MIN_ITEMSIZE
                for c in df.columns
                if not (
                    pd.api.types.is_numeric_dtype(df[c].dtype)
                    or pd.api.types.is_bool_dtype(df[c].dtype)
                    or pd.api.types.is_datetime64_any_dtype(df[c].dtype)
                )
            }
            first = df if len(df) else _placeholder_row(df)
            # put() creates the table; track_times=False keeps HDF5's clock out of the bytes
            self._hdf.put(
                HDF_KEY,
                first,
                format="table",
                index=False,
                track_times=False,
                min_itemsize=self._string_cols or None,
            )
            if not len(df):
                self._hdf.get_storer(HDF_KEY).table.remove_rows(0, 1)
            return
        if len(df):
            self._hdf.append(
                HDF_KEY, df, format="table", index=False, min_itemsize=self._string_cols or None
            )


def _in_utc(df: pd.DataFrame) -> pd.DataFrame:
    """tz-aware columns in UTC, so the ISO format's trailing Z is true."""
    tz_cols = [c for c in df.columns if isinstance(df[c].dtype, pd.DatetimeTZDtype)]
    if not tz_cols:
        return df
    return df.assign(**{c: df[c].dt.tz_convert("UTC") for c in tz_cols})


def _placeholder_row(df: pd.DataFrame) -> pd.DataFrame:
    """One row with df's dtypes: hdf5 tables cannot be created from zero rows."""
    zero = np.zeros(1, dtype=np.int64)
    cols: dict[str, Any] = {}
    for col, dtype in df.dtypes.items():
        if (
            pd.api.types.is_numeric_dtype(dtype)
            or pd.api.types.is_bool_dtype(dtype)
            or pd.api.types.is_datetime64_any_dtype(dtype)
        ):
            cols[str(col)] = pd.Series(zero).astype(dtype)
        else:
            cols[str(col)] = pd.Series([""], dtype=dtype)
    return pd.DataFrame(cols)


def write_split(df: pd.DataFrame, path_without_ext: Path | str, fmt: OutputFormat) -> Path:
    """Write ``df`` as ``path_without_ext`` + .parquet / .csv / .h5 and return the path."""
    with SplitWriter(path_without_ext, fmt) as writer:
        writer.write(df)
    return writer.path


def read_split(path: Path | str) -> pd.DataFrame:
    """Read a split file written here (by its extension)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, parse_dates=["timestamp"])
    if path.suffix == ".h5":
        frame = pd.read_hdf(path, HDF_KEY)
        assert isinstance(frame, pd.DataFrame)
        return frame
    raise ValueError(f"unknown split file type {path.suffix!r}")


def content_hash(path: Path | str, chunk_size: int = 1 << 20) -> str:
    """sha256 of the file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
