"""Strict scalar values at the input boundary: numbers, integers, times and symbols.

Every value a message carries is checked here before an event is built, so nothing that a
real venue could not have sent reaches the book, the windows or a feature. The bounds are wide
enough for every instrument Bybit lists (prices from sub-satoshi meme coins to BTC, sizes of
billions of tokens) and narrow enough that one absurd value cannot dominate a running sum:

| field (our name)                                   | accepted                         |
|----------------------------------------------------|----------------------------------|
| prices: level, trade ``p``, kline OHLC, ticker      | ``1e-10 <= x <= 1e9``            |
|   ``*_price*`` fields                              |                                  |
| sizes: level (0 = delete, deltas only), trade ``v``,| ``0`` or ``1e-10 <= x <= 1e12``  |
|   kline ``volume``, ticker ``bid1Size``/``ask1Size``|                                  |
| amounts: kline ``turnover``, ticker ``volume24h``,  | ``0`` or ``1e-10 <= x <= 1e16``  |
|   ``turnover24h``, ``openInterest(Value)``          |                                  |
| funding rate                                       | ``-1 <= x <= 1``                 |
| ``price24hPcnt`` (a ratio)                          | ``-1 <= x <= 1e4``               |
| ``u``, ``seq``                                     | JSON integers, ``0 <= x < 2**63``|
| times (exchange, gateway, trade ``T``, ticker and  | within ``time_window`` of the    |
|   funding times)                                   | receive time (default 1 day)     |
| kline ``start`` / ``end``                          | within ``kline_window`` before / |
|                                                    | ``time_window`` after receive    |
| every time, also a recording's receive stamp       | 2010-01-01 .. 2100-01-01 UTC     |
| symbols                                            | ``^[A-Z0-9]{2,30}$``, dated      |
|                                                    | futures ``+ -DDMMMYY``           |
| message body                                       | ``max_message_bytes`` (1 MiB)    |

Numbers arrive as strings (Bybit's wire form) or JSON numbers. A string must be an ASCII
decimal: ``float()`` alone would also take full-width digits (``"１２"``), underscores
(``"1_0"``), surrounding blanks and ``"inf"``/``"nan"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from feature_service.market.errors import MessageRejected, RejectReason

PRICE_MIN: Final = 1e-10
PRICE_MAX: Final = 1e9
SIZE_MIN: Final = 1e-10  # smallest non-zero size; zero has its own meaning where allowed
SIZE_MAX: Final = 1e12
AMOUNT_MAX: Final = 1e16
FUNDING_RATE_MAX: Final = 1.0
PCNT_MIN: Final = -1.0
PCNT_MAX: Final = 1e4
INT_MAX: Final = 2**63 - 1  # the raw store's int64 columns
MAX_LEVELS: Final = 1000  # Bybit's deepest order book stream
TS_MIN_US: Final = 1_262_304_000_000_000  # 2010-01-01T00:00:00Z
TS_MAX_US: Final = 4_102_444_800_000_000  # 2100-01-01T00:00:00Z
US_PER_DAY: Final = 86_400_000_000

# Bybit's dated futures add their delivery date: BTCUSDT-27MAR26.
SYMBOL_RE: Final = re.compile(r"[A-Z0-9]{2,30}(?:-[0-9]{2}[A-Z]{3}[0-9]{2})?")
_DECIMAL_RE: Final = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")

_DETAIL_MAX = 80


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """The configurable part of the checks (``FEATURE_SERVICE_MAX_MESSAGE_BYTES``,
    ``..._TIME_WINDOW_S``, ``..._KLINE_WINDOW_S``). The kline window reaches further back by
    default because the candle history is warmed up with 1,500 one-minute candles (25 h)."""

    max_message_bytes: int = 1_048_576
    time_window_us: int = US_PER_DAY
    kline_window_us: int = 2 * US_PER_DAY


DEFAULT_LIMITS: Final = ParseLimits()


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 3] + "..."


def reject(reason: RejectReason, detail: str) -> NoReturn:
    raise MessageRejected(reason, detail)


def is_decimal_text(text: str) -> bool:
    """ASCII decimal (optional sign, fraction, short exponent); the common plain form is
    recognised without the regular expression."""
    if not text.isascii():
        return False
    if text.replace(".", "", 1).isdigit():
        return True
    return _DECIMAL_RE.fullmatch(text) is not None


def number(value: Any, name: str) -> float:
    """A finite float from an ASCII decimal string or a JSON number (never a bool or null)."""
    kind = type(value)
    if kind is str:
        if not is_decimal_text(value):
            reject(RejectReason.BAD_NUMBER, f"{name} is not an ASCII decimal: {short(value)}")
    elif kind is not float and kind is not int:
        reject(RejectReason.BAD_NUMBER, f"{name} is not a number: {short(value)}")
    try:
        x = float(value)
    except (ValueError, OverflowError):
        reject(RejectReason.BAD_NUMBER, f"{name} is not a number: {short(value)}")
    if x - x != 0.0:  # NaN or +-inf: inf - inf and NaN - NaN are both NaN
        reject(RejectReason.BAD_NUMBER, f"{name} is not finite: {short(value)}")
    return x


def bounded(value: Any, name: str, low: float, high: float, zero_ok: bool = False) -> float:
    """``number`` within ``[low, high]``; with ``zero_ok`` an exact zero is accepted too."""
    x = number(value, name)
    if low <= x <= high or (zero_ok and x == 0.0):
        return x
    below_zero = (x < 0.0 and low >= 0.0) or (x == 0.0 and low > 0.0)
    reason = RejectReason.NEGATIVE_VALUE if below_zero else RejectReason.OUT_OF_RANGE
    reject(reason, f"{name} must be within [{low:g}, {high:g}], got {short(value)}")


def price(value: Any, name: str) -> float:
    return bounded(value, name, PRICE_MIN, PRICE_MAX)


def size(value: Any, name: str, zero_ok: bool = False) -> float:
    return bounded(value, name, SIZE_MIN, SIZE_MAX, zero_ok)


def amount(value: Any, name: str) -> float:
    return bounded(value, name, SIZE_MIN, AMOUNT_MAX, zero_ok=True)


def integer(value: Any, name: str) -> int:
    """A JSON integer in ``[0, 2**63)``: a string or float ``u`` / ``seq`` is refused."""
    if type(value) is not int:
        reject(RejectReason.BAD_NUMBER, f"{name} must be a JSON integer, got {short(value)}")
    if value < 0:
        reject(RejectReason.NEGATIVE_VALUE, f"{name} must be >= 0, got {value}")
    if value > INT_MAX:
        reject(RejectReason.OUT_OF_RANGE, f"{name} must be < 2**63, got {short(value)}")
    return value


def ms_to_us(value: Any, name: str) -> int:
    """Milliseconds since the epoch (JSON integer or ASCII digits) -> microseconds, within
    2010..2100."""
    kind = type(value)
    if kind is int:
        us = value * 1_000
    elif kind is str and value.isdigit() and value.isascii() and len(value) <= 16:
        us = int(value) * 1_000
    else:
        reject(RejectReason.BAD_TIMESTAMP, f"{name} is not a millisecond time: {short(value)}")
    return absolute_time(us, name)


def absolute_time(us: int, name: str) -> int:
    if TS_MIN_US <= us < TS_MAX_US:
        return us
    reject(RejectReason.BAD_TIMESTAMP, f"{name} is outside 2010..2100: {us} us")


def near(us: int, receive_ts: int, before_us: int, after_us: int, name: str) -> int:
    """``us`` no more than ``before_us`` before and ``after_us`` after the receive time."""
    if receive_ts - before_us <= us <= receive_ts + after_us:
        return us
    off_s = (us - receive_ts) / 1e6
    reject(
        RejectReason.BAD_TIMESTAMP,
        f"{name} is {off_s:+.0f} s from the receive time (window -{before_us // 1_000_000} s"
        f" / +{after_us // 1_000_000} s)",
    )


_SYMBOLS_OK: set[str] = set()
_SYMBOLS_OK_MAX = 4096  # bounded: garbage input must not grow it without limit


def symbol(value: Any) -> str:
    if type(value) is str and value in _SYMBOLS_OK:
        return value
    if type(value) is not str or not value:
        reject(RejectReason.MISSING_SYMBOL, f"no symbol in payload or topic: {short(value)}")
    if SYMBOL_RE.fullmatch(value) is None:
        reject(
            RejectReason.BAD_SYMBOL,
            f"symbol must match ^[A-Z0-9]{{2,30}}$ (dated futures: -DDMMMYY): {short(value)}",
        )
    if len(_SYMBOLS_OK) >= _SYMBOLS_OK_MAX:
        _SYMBOLS_OK.clear()
    _SYMBOLS_OK.add(value)
    return value
