"""JSON Lines recordings of market data, and the event -> envelope inverse of parsing.

One JSON object per line, gzip-compressed when the file name ends in ``.gz``. A line is a
ws-gateway envelope exactly as consumed, plus ``service_received_at`` (our receive stamp,
ISO-8601 naive UTC) when known; a bare Bybit V5 frame is accepted too (its ``ts`` stands in for
the receive time). Lines are parsed with the live parser, so a replay sees what production saw.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from types import TracebackType
from typing import IO, Any, Self

import orjson

from feature_service.market.errors import MessageRejected, RejectReason
from feature_service.market.events import (
    TICKER_FIELDS,
    BookDelta,
    BookSnapshot,
    Funding,
    Kline,
    MarketEvent,
    Ticker,
    Trade,
)
from feature_service.market.parsing import parse_message
from feature_service.market.timeutil import format_iso_us

__all__ = [
    "RecordingError",
    "RecordingWriter",
    "event_to_envelope",
    "iter_envelopes",
    "iter_lines",
    "iter_recording",
    "read_recording",
    "write_recording",
]

PathLike = str | os.PathLike[str]
OnError = Callable[["RecordingError"], None]

_BYBIT_KEYS: dict[str, str] = {name: key for key, name in TICKER_FIELDS.items()}
_MS_FIELDS = frozenset({"next_funding_time"})


class RecordingError(MessageRejected):
    """A malformed recording line: where it is, and why the parser rejected it."""

    def __init__(self, path: PathLike, line_no: int, cause: MessageRejected) -> None:
        super().__init__(cause.reason, f"{os.fspath(path)}:{line_no}: {cause.detail}")
        self.path = os.fspath(path)
        self.line_no = line_no
        self.cause = cause


# --------------------------------------------------------------------------- event -> envelope


def _num(value: float) -> str:
    """Shortest text that parses back to exactly ``value``, in Bybit's positional style."""
    text = repr(value)
    if "e" in text or "E" in text:
        # repr switches to exponent form (1e-05); Decimal keeps the same digits, positionally.
        text = format(Decimal(text), "f")
    return text


def _ms(us: int, name: str) -> int:
    ms, rest = divmod(us, 1_000)
    if rest:
        raise ValueError(f"{name}={us} is not a whole millisecond; Bybit sends milliseconds")
    return ms


def _levels(levels: list[tuple[float, float]]) -> list[list[str]]:
    return [[_num(price), _num(size)] for price, size in levels]


def _book_payload(event: BookSnapshot | BookDelta) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "s": event.symbol,
        "b": _levels(event.bids),
        "a": _levels(event.asks),
        "u": event.update_id,
    }
    if event.seq is not None:
        payload["seq"] = event.seq
    payload["topic"] = event.topic
    payload["type"] = "snapshot" if type(event) is BookSnapshot else "delta"
    return payload


def _trade_payload(event: Trade) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "T": _ms(event.trade_time, "trade_time"),
        "s": event.symbol,
        "S": "Buy" if event.side > 0 else "Sell",
        "v": _num(event.size),
        "p": _num(event.price),
        "i": event.trade_id,
        "BT": event.block_trade,
    }
    if event.seq is not None:
        payload["seq"] = event.seq
    payload["topic"] = event.topic
    return payload


def _kline_payload(event: Kline) -> dict[str, Any]:
    # Bybit's kline ``timestamp`` (last trade time) is not kept in the event, so it is omitted.
    return {
        "start": _ms(event.start, "start"),
        "end": _ms(event.end, "end"),
        "interval": event.interval,
        "open": _num(event.open),
        "close": _num(event.close),
        "high": _num(event.high),
        "low": _num(event.low),
        "volume": _num(event.volume),
        "turnover": _num(event.turnover),
        "confirm": event.confirmed,
        "topic": event.topic,
    }


def _ticker_payload(event: Ticker) -> dict[str, Any]:
    payload: dict[str, Any] = {"symbol": event.symbol}
    for name, value in event.fields.items():
        key = _BYBIT_KEYS.get(name)
        if key is None:
            raise ValueError(f"unknown ticker field {name!r}")
        if name in _MS_FIELDS:
            if type(value) is not int:
                raise ValueError(f"ticker {name} must be int microseconds, got {value!r}")
            payload[key] = str(_ms(value, name))  # Bybit sends it as a string of milliseconds
        else:
            payload[key] = _num(value)
    payload["topic"] = event.topic
    return payload


def _funding_payload(event: Funding) -> dict[str, Any]:
    payload: dict[str, Any] = {"symbol": event.symbol, "fundingRate": _num(event.funding_rate)}
    if event.funding_rate_ts is not None:
        payload["fundingRateTimestamp"] = str(_ms(event.funding_rate_ts, "funding_rate_ts"))
    if event.next_funding_time is not None:
        payload["nextFundingTime"] = str(_ms(event.next_funding_time, "next_funding_time"))
    payload["topic"] = event.topic
    return payload


_PAYLOADS: dict[type, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    BookSnapshot: ("orderbook", _book_payload),
    BookDelta: ("orderbook", _book_payload),
    Trade: ("trade", _trade_payload),
    Kline: ("kline", _kline_payload),
    Ticker: ("ticker", _ticker_payload),
    Funding: ("funding", _funding_payload),
}


def event_to_envelope(event: MarketEvent, *, include_service_time: bool = True) -> dict[str, Any]:
    """The ws-gateway envelope that parses back to ``event`` (the inverse of parsing).

    Numbers go out as Bybit's strings (shortest round-trip text), ``T``/``u``/``seq``/
    ``start``/``end`` as integers. ``service_received_at`` carries ``receive_ts`` unless
    ``include_service_time`` is false. An event without a gateway time (from a bare frame) gets
    ``received_at: null`` and missing ids become null, so nothing is invented. A
    ``BookDelta`` with ``update_id == 1`` parses back as a snapshot (Bybit's restart marker),
    and payload times must be whole milliseconds (``ValueError`` otherwise).
    """
    entry = _PAYLOADS.get(type(event))
    if entry is None:
        raise TypeError(f"not a market event: {type(event).__name__}")
    event_type, build = entry
    envelope: dict[str, Any] = {
        "event_id": event.event_id,
        "event_type": event_type,
        "topic": event.topic,
        "timestamp": format_iso_us(event.exchange_ts),
        "received_at": None if event.gateway_ts is None else format_iso_us(event.gateway_ts),
        "payload": build(event),
        "trace_id": event.trace_id,
    }
    if include_service_time:
        envelope["service_received_at"] = format_iso_us(event.receive_ts)
    return envelope


# --------------------------------------------------------------------------- reading


def _open_read(path: PathLike) -> IO[bytes]:
    if os.fspath(path).endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _lines(path: PathLike) -> Iterator[tuple[int, bytes]]:
    line_no = 0
    with _open_read(path) as fh:
        try:
            for line in fh:
                line_no += 1
                if line.strip():
                    yield line_no, line
        except (EOFError, gzip.BadGzipFile) as exc:
            # A recorder killed mid-write leaves a truncated gzip stream: report where it ends.
            cause = MessageRejected(RejectReason.BAD_JSON, f"unreadable gzip stream: {exc}")
            raise RecordingError(path, line_no + 1, cause) from exc


def iter_lines(path: PathLike) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of every non-blank line, undecoded (for the ingest boundary)."""
    return _lines(path)


def iter_envelopes(path: PathLike) -> Iterator[dict[str, Any]]:
    """The decoded lines (envelopes or bare frames) in file order; blank lines are skipped.
    A line that is not a JSON object raises ``RecordingError``."""
    for line_no, line in _lines(path):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            cause = MessageRejected(RejectReason.BAD_JSON, str(exc)[:80])
            raise RecordingError(path, line_no, cause) from exc
        if type(obj) is not dict:
            cause = MessageRejected(RejectReason.NOT_AN_OBJECT, "line is not a JSON object")
            raise RecordingError(path, line_no, cause)
        yield obj


def iter_recording(path: PathLike, *, on_error: OnError | None = None) -> Iterator[MarketEvent]:
    """The recording's events in file order, timed by the recorded clocks (see parse_message).

    A malformed line raises ``RecordingError`` (with its line number); with ``on_error`` the
    error is handed to that callable instead and reading continues with the next line (a
    truncated gzip stream is reported the same way, and ends the reading).
    """
    lines = _lines(path)
    while True:
        try:
            line_no, line = next(lines)
        except StopIteration:
            return
        except RecordingError as error:  # the file itself is unreadable from here on
            if on_error is None:
                raise
            on_error(error)
            return
        try:
            events = parse_message(line)
        except MessageRejected as exc:
            error = RecordingError(path, line_no, exc)
            if on_error is None:
                raise error from exc
            on_error(error)
            continue
        yield from events


read_recording = iter_recording  # the name docs/architecture.md uses


# --------------------------------------------------------------------------- writing


class RecordingWriter:
    """Writes one JSON object per line; gzip when the path ends in ``.gz``.

    ``with RecordingWriter(path) as w: w.write_event(event)``. ``lines`` counts what was written.
    """

    def __init__(self, path: PathLike, *, compresslevel: int = 6) -> None:
        self.path = os.fspath(path)
        self.lines = 0
        # Held open across calls and closed in close(): a with-block cannot span them.
        self._fh: IO[bytes]
        if self.path.endswith(".gz"):
            self._fh = gzip.open(self.path, "wb", compresslevel=compresslevel)  # noqa: SIM115
        else:
            self._fh = open(self.path, "wb")  # noqa: SIM115

    def write_envelope(self, envelope: Mapping[str, Any]) -> None:
        """Write an envelope or a bare frame as it is."""
        obj = envelope if type(envelope) is dict else dict(envelope)
        self._fh.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
        self.lines += 1

    def write_event(self, event: MarketEvent, *, include_service_time: bool = True) -> None:
        self.write_envelope(event_to_envelope(event, include_service_time=include_service_time))

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_recording(path: PathLike, items: Iterable[MarketEvent | Mapping[str, Any]]) -> int:
    """Write events (as envelopes) and/or ready envelopes or frames; returns the line count."""
    with RecordingWriter(path) as writer:
        for item in items:
            if isinstance(item, Mapping):
                writer.write_envelope(item)
            else:
                writer.write_event(item)
        return writer.lines
