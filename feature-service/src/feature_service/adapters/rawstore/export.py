"""Export of the raw store as a JSON Lines recording that ``feature-service compute`` replays.

One line per stored message, in live order (receive time, then arrival order), duplicates
dropped: the original body, with ``service_received_at`` set to the stored receive time, so the
recording parser stamps every event exactly as the live service did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from feature_service.adapters.rawstore.layout import Kind, resolve_kinds
from feature_service.adapters.rawstore.reader import DEFAULT_DEDUP_WINDOW_US, RawReader
from feature_service.logging import get_logger
from feature_service.market.recording import RecordingWriter
from feature_service.market.timeutil import format_iso_us

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ExportSummary:
    output: Path
    lines: int
    duplicates: int
    first_us: int | None
    last_us: int | None


def export_recording(
    root: Path | str,
    kinds: Iterable[Kind | str] | None,
    symbol: str | Iterable[str] | None,
    start_us: int | None,
    end_us: int | None,
    output: Path | str,
    *,
    dedup_window_us: int = DEFAULT_DEDUP_WINDOW_US,
) -> ExportSummary:
    """Write ``[start_us, end_us)`` of the given kinds and symbol(s) to ``output`` (gzip when it
    ends in ``.gz``). Executions are not market data and cannot be exported for replay."""
    wanted = resolve_kinds(kinds)
    if Kind.EXECUTIONS in wanted or Kind.ORDERBOOK_CHECKPOINTS in wanted:
        raise ValueError("executions are not replayable market data")
    symbols = [symbol] if isinstance(symbol, str) else symbol
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    reader = RawReader(root, dedup_window_us=dedup_window_us)
    first: int | None = None
    last: int | None = None
    with RecordingWriter(output) as writer:
        for row in reader.iter_rows(wanted, symbols, start_us, end_us):
            if row["part"]:
                continue  # the body was written with its first event; it carries all of them
            body = orjson.loads(row["raw"])
            ts = row["receive_ts"]
            body["service_received_at"] = format_iso_us(ts)
            writer.write_envelope(body)
            if first is None:
                first = ts
            last = ts
        lines = writer.lines
    summary = ExportSummary(output, lines, reader.stats.duplicates, first, last)
    log.info(
        "raw_export_done",
        output=str(output),
        lines=lines,
        duplicates=summary.duplicates,
        kinds=[k.value for k in wanted],
        symbols=symbols,
    )
    return summary
