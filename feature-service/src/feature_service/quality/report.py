"""The data quality report of one symbol over a period, from minute summaries and incidents.

Pure: the same summaries and incidents give the same report, whether they were precomputed
by the live monitor or produced by replaying stored raw data.

Definitions (period ``[start, end)`` on receive time, whole minutes):
- completeness of a stream that delivered anything in the period: for 1 m klines, confirmed
  candles received / minutes in the period; for the others, 1 - (silent time inside the
  period) / period length, silence being the ``stream_silent`` incidents;
- ``missing_rate`` = 1 - the mean completeness of those streams (1 when nothing arrived);
- ``anomaly_rate`` = anomalous messages / messages;
- ``sequence_gaps`` = ``u_gap`` incidents; ``desynchronization_events`` = ``book_desync``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from feature_service.quality.config import SKEW_BUCKETS_MS, QualityConfig
from feature_service.quality.incidents import Category, Incident, IncidentKind
from feature_service.quality.summary import US_PER_MINUTE, MinuteSummary

US_PER_S = 1_000_000


def snap_period(start_us: int, end_us: int) -> tuple[int, int]:
    """Reports cover whole minutes: the start is floored and the end ceiled to a minute."""
    start = start_us - start_us % US_PER_MINUTE
    end = -(-end_us // US_PER_MINUTE) * US_PER_MINUTE
    return start, max(end, start + US_PER_MINUTE)


@dataclass(slots=True)
class QualityReport:
    symbol: str
    period_start_us: int
    period_end_us: int
    missing_rate: float
    anomaly_rate: float
    sequence_gaps: int
    desynchronization_events: int
    completeness: dict[str, float]
    messages: dict[str, int]
    anomaly_details: dict[str, Any]
    sequence_gap_details: dict[str, Any]
    timestamp_details: dict[str, Any]
    desync_details: dict[str, Any]
    recommendations: list[str]
    incidents: list[Incident] = field(default_factory=list)

    def comparable(self) -> dict[str, Any]:
        """Everything but identity: two reports of the same data compare equal on this."""
        out = {k: getattr(self, k) for k in self.__slots__ if k != "incidents"}
        out["incidents"] = [i.to_dict() for i in self.incidents]
        return out


def merge_incidents(records: Iterable[Incident]) -> list[Incident]:
    """One incident per ``seq``: the last record (its closing one) wins."""
    by_seq: dict[tuple[int, int, str], Incident] = {}
    for rec in records:
        by_seq[(rec.seq, rec.start_us, rec.kind.value)] = rec
    return sorted(by_seq.values(), key=lambda i: (i.detected_us, i.seq))


def build_report(
    symbol: str,
    start_us: int,
    end_us: int,
    minutes: Iterable[MinuteSummary],
    incidents: Iterable[Incident],
    config: QualityConfig | None = None,
) -> QualityReport:
    """``minutes`` / ``incidents`` may cover more than the period; only what lies inside
    counts (minutes by their start, incidents by their detection time)."""
    config = config or QualityConfig()
    rows = [m for m in minutes if m.symbol == symbol and start_us <= m.minute_us < end_us]
    incs = [
        i
        for i in merge_incidents(incidents)
        if i.symbol == symbol and start_us <= i.detected_us < end_us
    ]
    duration = end_us - start_us
    messages: Counter[str] = Counter()
    anomalies = 0
    klines = 0
    hist: dict[str, list[int]] = {}
    skew_max: dict[str, float] = {}
    first_rx: dict[str, int] = {}
    last_rx: dict[str, int] = {}
    for m in rows:
        for stream, t in m.first_rx.items():
            first_rx[stream] = min(t, first_rx.get(stream, t))
        for stream, t in m.last_rx.items():
            last_rx[stream] = max(t, last_rx.get(stream, t))
        messages.update(m.messages)
        anomalies += m.anomalies
        klines += m.confirmed_klines
        for stream, h in m.skew_hist.items():
            acc = hist.setdefault(stream, [0] * len(h))
            for i, n in enumerate(h):
                acc[i] += n
        for stream, v in m.skew_max_ms.items():
            skew_max[stream] = max(skew_max.get(stream, 0.0), v)
    total = sum(messages.values())
    by_kind = Counter(i.kind for i in incs)

    completeness: dict[str, float] = {}
    for stream in sorted(messages):
        if stream == "kline":
            expected = duration // US_PER_MINUTE
            completeness[stream] = round(min(1.0, klines / expected), 6) if expected else 1.0
            continue
        silences = [i for i in incs if i.kind is IncidentKind.STREAM_SILENT and i.stream == stream]
        silent = sum(
            max(0, min(i.end_us or end_us, end_us) - max(i.start_us, start_us)) for i in silences
        )
        # Silence before the stream's first message and after its last one in the period has
        # no incident (nothing closed it inside the period): counted when beyond the limit.
        limit = config.silence_us(stream) or int(config.silence_floor_s * US_PER_S)
        lead = first_rx[stream] - start_us
        if lead > limit and not any(i.start_us <= start_us for i in silences):
            silent += lead
        trail = end_us - last_rx[stream]
        if trail > limit:
            silent += trail
        completeness[stream] = round(max(0.0, 1.0 - silent / duration), 6)
    missing_rate = 1.0 if not completeness else 1.0 - sum(completeness.values()) / len(completeness)
    anomaly_rate = min(1.0, anomalies / total) if total else 0.0

    def kind_stats(kinds: Iterable[IncidentKind]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in kinds:
            found = [i for i in incs if i.kind is kind]
            if found:
                out[kind.value] = {
                    "count": len(found),
                    "max_magnitude": max(i.magnitude for i in found),
                    "total_magnitude": round(sum(i.magnitude for i in found), 9),
                    "streams": dict(Counter(i.stream for i in found)),
                }
        return out

    anomaly_kinds = [k for k in IncidentKind if k.category is Category.ANOMALY]
    sequence_kinds = [k for k in IncidentKind if k.category is Category.SEQUENCE]
    missing_kinds = [k for k in IncidentKind if k.category is Category.MISSING]
    skew = {stream: _skew_stats(h, skew_max.get(stream, 0.0), config) for stream, h in hist.items()}
    desyncs = [i for i in incs if i.kind is IncidentKind.BOOK_DESYNC]
    closed = [i.magnitude for i in desyncs if i.end_us is not None]
    report = QualityReport(
        symbol=symbol,
        period_start_us=start_us,
        period_end_us=end_us,
        missing_rate=round(min(1.0, max(0.0, missing_rate)), 6),
        anomaly_rate=round(anomaly_rate, 6),
        sequence_gaps=by_kind[IncidentKind.U_GAP],
        desynchronization_events=len(desyncs),
        completeness=completeness,
        messages=dict(sorted(messages.items())),
        anomaly_details={"anomalous_messages": anomalies, **kind_stats(anomaly_kinds)},
        sequence_gap_details={
            "missing_updates": int(sum(i.magnitude for i in incs if i.kind is IncidentKind.U_GAP)),
            **kind_stats(sequence_kinds),
            **kind_stats(missing_kinds),
        },
        timestamp_details={
            "skew_threshold_ms": config.skew_threshold_ms,
            "skew": skew,
            **kind_stats([IncidentKind.CLOCK_SKEW, IncidentKind.TIME_BACKWARDS]),
        },
        desync_details={
            "count": len(desyncs),
            "still_open": len(desyncs) - len(closed),
            "total_seconds": round(sum(closed), 6),
            "max_seconds": max(closed, default=0.0),
        },
        recommendations=[],
        incidents=incs,
    )
    report.recommendations = recommendations(report)
    return report


def _skew_stats(hist: list[int], max_ms: float, config: QualityConfig) -> dict[str, Any]:
    """Distribution of |receive - exchange| from the bucket counts (percentiles are bucket
    upper bounds, so they are exact to the bucket)."""
    n = sum(hist)
    bounds = [*SKEW_BUCKETS_MS, max_ms]

    def pct(q: float) -> float:
        target = q * n
        acc = 0
        for i, c in enumerate(hist):
            acc += c
            if acc >= target and c:
                return min(bounds[i], max_ms)
        return max_ms

    above = sum(
        c
        for i, c in enumerate(hist)
        if i >= len(SKEW_BUCKETS_MS) or SKEW_BUCKETS_MS[i] > config.skew_threshold_ms
    )
    labels = [f"<={b:g}ms" for b in SKEW_BUCKETS_MS] + [f">{SKEW_BUCKETS_MS[-1]:g}ms"]
    return {
        "count": n,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": max_ms,
        "above_threshold_bucket": above,
        "histogram": {label: c for label, c in zip(labels, hist, strict=True) if c},
    }


def recommendations(report: QualityReport) -> list[str]:
    """Plain-words advice for whoever reads the report."""
    out: list[str] = []
    if not report.messages:
        return [
            "No data was stored for this symbol in this period: check the ws-gateway "
            "subscriptions and that the service was consuming."
        ]
    for stream, value in report.completeness.items():
        if value < 0.99:
            out.append(
                f"The {stream} stream is {100 * (1 - value):.2f}% incomplete: check the "
                f"ws-gateway subscription and connection for it; backfill the gaps before "
                f"building datasets over this period."
            )
    if report.sequence_gaps:
        out.append(
            f"{report.sequence_gaps} order book sequence gap(s): deltas were lost between "
            f"Bybit and the service; rows built while the book was out of sync carry "
            f"quality_ok=false, use quality_filter when building datasets."
        )
    d = report.desync_details
    if d["count"]:
        out.append(
            f"The book was out of sync {d['count']} time(s), {d['total_seconds']:.3f} s in "
            f"total (longest {d['max_seconds']:.3f} s)."
        )
    anomalies = {k: v for k, v in report.anomaly_details.items() if isinstance(v, dict)}
    if anomalies:
        names = ", ".join(f"{v['count']} {k}" for k, v in anomalies.items())
        out.append(f"Anomalies found ({names}): inspect the incidents before trusting the period.")
    t = report.timestamp_details
    if any(isinstance(v, dict) and "count" in v for k, v in t.items() if k != "skew"):
        out.append(
            "Timestamps were off (clock skew or time going backwards): check NTP on the "
            "ws-gateway and service hosts."
        )
    if not out:
        out.append("No problems found: the data is fit for training and evaluation.")
    return out
