"""Precomputed quality summaries: what the live monitor found, minute by minute, on disk.

Layout under ``root`` (``DATA_DIR/quality``):
- ``{SYMBOL}/{YYYY-MM-DD}/{session}.jsonl``: one JSON object per line, ``{"t": "m", ...}`` a
  finished minute summary (day of its minute), ``{"t": "i", ...}`` an incident record (day of
  its detection; an open incident has a second record when it closes);
- ``sessions/{session}.json``: ``{"session", "start_us", "until_us"}``: the monitor saw every
  event received in ``[start_us, until_us)``, so any report inside that span can be built from
  the summaries alone, without reading raw data. A live session covers every symbol; a session
  computed from the raw store (data that entered it other than live: imports, backfills) also
  has ``"symbol"`` and ``"fingerprint"`` (the raw files it read), and covers only that symbol
  while the raw files are still the same.

Lines are appended and flushed; a torn last line (a crash mid-write) is skipped on read. The
session file is replaced atomically (write to a temporary name, rename).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from feature_service.adapters.rawstore.layout import US_PER_DAY, day_of
from feature_service.logging import get_logger
from feature_service.quality.incidents import Incident
from feature_service.quality.summary import MinuteSummary

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Session:
    session: str
    start_us: int
    until_us: int
    symbol: str | None = None  # None: a live session (every symbol)
    fingerprint: str | None = None

    def covers(self, start_us: int, end_us: int) -> bool:
        return self.start_us <= start_us and end_us <= self.until_us


class QualityStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # -- writing (one session per live process) -----------------------------------------------
    def append(
        self,
        session: str,
        minutes: Iterable[MinuteSummary],
        incidents: Iterable[Incident],
    ) -> int:
        """Append summaries and incident records of ``session``; returns lines written."""
        lines: dict[tuple[str, str], list[bytes]] = {}
        for m in minutes:
            key = (m.symbol, day_of(m.minute_us))
            lines.setdefault(key, []).append(orjson.dumps({"t": "m", **m.to_dict()}))
        for inc in incidents:
            key = (inc.symbol, day_of(inc.detected_us))
            lines.setdefault(key, []).append(orjson.dumps({"t": "i", **inc.to_dict()}))
        written = 0
        for (symbol, day), batch in lines.items():
            path = self.root / symbol / day / f"{session}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as fh:
                fh.write(b"\n".join(batch) + b"\n")
                fh.flush()
            written += len(batch)
        return written

    def mark_covered(
        self,
        session: str,
        start_us: int,
        until_us: int,
        *,
        symbol: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        path = self.root / "sessions" / f"{session}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        doc: dict[str, object] = {"session": session, "start_us": start_us, "until_us": until_us}
        if symbol is not None:
            doc.update(symbol=symbol, fingerprint=fingerprint)
        tmp.write_bytes(orjson.dumps(doc))
        os.replace(tmp, path)

    def remove(self, session: str) -> None:
        """Forget a session: its coverage first (so no reader trusts half its files), then
        its summary files."""
        with contextlib.suppress(FileNotFoundError):
            (self.root / "sessions" / f"{session}.json").unlink()
        for path in self.root.glob(f"*/*/{session}.jsonl"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- reading -------------------------------------------------------------------------------
    def sessions(self) -> list[Session]:
        folder = self.root / "sessions"
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.json")):
            try:
                data = orjson.loads(path.read_bytes())
                out.append(
                    Session(
                        data["session"],
                        int(data["start_us"]),
                        int(data["until_us"]),
                        data.get("symbol"),
                        data.get("fingerprint"),
                    )
                )
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("quality_session_unreadable", path=str(path))
        return out

    def covering(self, start_us: int, end_us: int) -> Session | None:
        """The live session whose summaries cover ``[start_us, end_us)``, latest first."""
        found = [s for s in self.sessions() if s.symbol is None and s.covers(start_us, end_us)]
        return max(found, key=lambda s: s.start_us) if found else None

    def raw_sessions(self, symbol: str) -> list[Session]:
        """The sessions computed from the raw store for ``symbol``, in start order."""
        return sorted((s for s in self.sessions() if s.symbol == symbol), key=lambda s: s.start_us)

    def read(
        self, session: str, symbol: str, start_us: int, end_us: int
    ) -> tuple[list[MinuteSummary], list[Incident]]:
        minutes: list[MinuteSummary] = []
        incidents: list[Incident] = []
        first = start_us // US_PER_DAY
        last = (end_us - 1) // US_PER_DAY
        for n in range(first, last + 1):
            path = self.root / symbol / day_of(n * US_PER_DAY) / f"{session}.jsonl"
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            for line in raw.splitlines():
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line
                if data.pop("t", None) == "m":
                    minutes.append(MinuteSummary.from_dict(data))
                else:
                    data.pop("category", None)
                    incidents.append(Incident.from_dict(data))
        return minutes, incidents
