"""Raw market data store: every consumed message kept as Parquet (see layout.py for the layout
and the write protocol, schema.py for the columns)."""

from feature_service.adapters.rawstore.layout import ALL_KINDS, MARKET_KINDS, Kind, resolve_kinds
from feature_service.adapters.rawstore.reader import RawReader, RawRecord
from feature_service.adapters.rawstore.schema import RecordMeta, schema_for
from feature_service.adapters.rawstore.writer import (
    RawStoreError,
    RawWriter,
    RawWriterSync,
    WriterStats,
    WrittenPart,
)

__all__ = [
    "ALL_KINDS",
    "MARKET_KINDS",
    "Kind",
    "RawReader",
    "RawRecord",
    "RawStoreError",
    "RawWriter",
    "RawWriterSync",
    "RecordMeta",
    "WriterStats",
    "WrittenPart",
    "resolve_kinds",
    "schema_for",
]
