"""FeatureEngine: events in, feature vectors out. The single driver both engines share.

The live engine calls ``process`` for each consumed event and ``advance_to`` from its timer; the
offline engine calls ``process`` for each replayed event. Both therefore close the same
boundaries with the same state, which is what makes online/offline identity hold by
construction: a vector at ``t`` depends only on the events with ``receive_ts < t``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable

from feature_service.engine.boundaries import IntervalClock
from feature_service.engine.switch import PlanSwitch, SwitchDone, SwitchFailed
from feature_service.engine.vector import FeatureVector
from feature_service.features.catalog import BUNDLED_PLAN
from feature_service.features.library import FeaturePlan
from feature_service.features.state import SymbolState
from feature_service.logging import get_logger
from feature_service.market.events import US_PER_S, MarketEvent
from feature_service.quality.monitor import QualityMonitor

log = get_logger(__name__)

_UNSET = -(1 << 62)  # next close of a state no event or tick has reached yet


class FeatureEngine:
    def __init__(
        self,
        *,
        intervals_s: Iterable[int] = (1, 3, 15, 60),
        registry_version: str | None = None,
        stale_after_s: float = 5.0,
        latency_warning_ms: float = 70.0,
        symbols: Iterable[str] | None = None,
        plan: FeaturePlan = BUNDLED_PLAN,
        state_factory: Callable[[str], SymbolState] | None = None,
        quality: QualityMonitor | None = None,
    ) -> None:
        self.clock = IntervalClock(intervals_s)
        # The plan (a registry version's operator set) decides what every symbol computes.
        self.plan = plan
        self.registry_version = registry_version or plan.version or BUNDLED_PLAN.version
        self._stale_after_us = int(stale_after_s * US_PER_S)
        self._latency_warning_us = latency_warning_ms * 1000.0
        self._allowed = frozenset(symbols) if symbols else None
        self._state_factory = state_factory or (lambda symbol: SymbolState(symbol, self.plan))
        self.states: dict[str, SymbolState] = {}
        # Sees every event right after the book applied it; its mask rides on every vector.
        self.quality = quality if quality is not None else QualityMonitor()
        self.versions: dict[str, str] = {}  # the version each symbol's state computes
        self.switch: PlanSwitch | None = None
        # While a warm switch is prepared: every event applied, for the warm engine to catch up.
        self.tap: list[MarketEvent] | None = None
        self._next_close: dict[str, int] = {}
        self._last_ts: dict[str, int] = {}
        # Observability (read by metrics / health; never by features).
        self.null_counts: Counter[tuple[str, str]] = Counter()
        self.events_processed = 0
        self.events_ignored = 0
        self.late_events = 0
        self.vectors_emitted = 0
        self.slow_computations = 0
        self.last_computation_us = 0.0

    # -- driving -------------------------------------------------------------------------------
    def process(self, event: MarketEvent) -> list[FeatureVector]:
        """Close every boundary <= the event's receive time for its symbol, then apply it."""
        symbol = event.symbol
        if self._allowed is not None and symbol not in self._allowed:
            self.events_ignored += 1
            return []
        t = event.receive_ts
        state = self.states.get(symbol)
        if state is None:
            state = self.ensure_state(symbol)
        out: list[FeatureVector] = []
        if t >= self._next_close[symbol]:
            state = self._close_until(symbol, state, t, out)
        last = self._last_ts.get(symbol)
        if last is not None and t < last:
            # Receive times are stamped monotonically live; an older one can only come from an
            # unsorted input file. It is applied (never dropped) but counted.
            self.late_events += 1
        elif getattr(event, "feed", None) is None:
            # Data age and staleness follow the stream: the REST depth poller (feed "rest")
            # keeps arriving when the stream has died, and must not make it look alive.
            self._last_ts[symbol] = t
        state.on_time(t)
        state.apply(event)
        self.quality.observe(event, state.book)
        self.events_processed += 1
        if self.tap is not None:
            self.tap.append(event)
        return out

    def ensure_state(self, symbol: str) -> SymbolState:
        """The symbol's state, created empty if needed. Its first boundary is set by the first
        event or timer tick that reaches it (a warm-up may fill the state before that)."""
        state = self.states.get(symbol)
        if state is None:
            state = self.states[symbol] = self._state_factory(symbol)
            self.versions[symbol] = self.registry_version
            self._next_close[symbol] = _UNSET
        return state

    def advance_to(self, t: int) -> list[FeatureVector]:
        """Close boundaries <= t for every symbol (the live timer in quiet periods)."""
        out: list[FeatureVector] = []
        for symbol in list(self.states):
            # Looked up each time: a registry switch on the way replaces every symbol's state.
            if t >= self._next_close[symbol]:
                self._close_until(symbol, self.states[symbol], t, out)
        return out

    def schedule_switch(
        self,
        plan: FeaturePlan,
        version: str,
        at_us: int,
        on_done: SwitchDone | None = None,
        *,
        warm: FeatureEngine | None = None,
    ) -> int:
        """Compute ``plan`` (stamped ``version``) from the first boundary >= ``at_us`` on, for
        every symbol at once (see ``engine.switch``; ``warm``: an engine running ``plan``
        whose states to take, fed ``self.tap`` first); returns that boundary."""
        if self.switch is not None:
            raise RuntimeError(f"a switch to {self.switch.version} is already pending")
        at = self.clock.first_boundary_after(at_us - 1)
        self.switch = PlanSwitch(plan, version, at, on_done, warm)
        if not self.states:
            # Nothing computed yet: take the warm states as they are (the first event or tick
            # opens their boundaries), or start empty with the new plan.
            self._switch_all(None, None, [])
        return at

    def cancel_switch(self, reason: str) -> None:
        """Give up a pending switch: every symbol stays on the previous version."""
        self._finish_switch(reason)

    def export_states(self) -> tuple[dict[str, SymbolState], dict[str, int], dict[str, int]]:
        """What another engine needs to go on with these symbols (picklable: a warm-up made in
        a worker process, ``adopt_states`` there)."""
        return self.states, self._next_close, self._last_ts

    def adopt_states(
        self, states: dict[str, SymbolState], next_close: dict[str, int], last_ts: dict[str, int]
    ) -> None:
        for symbol, state in states.items():
            self.states[symbol] = state
            self.versions[symbol] = self.registry_version
            self._next_close[symbol] = next_close[symbol]
            if symbol in last_ts:
                self._last_ts[symbol] = last_ts[symbol]

    def advance_symbol_to(self, symbol: str, t: int) -> list[FeatureVector]:
        """``advance_to`` for one symbol."""
        out: list[FeatureVector] = []
        state = self.states[symbol]
        if t >= self._next_close[symbol]:
            self._close_until(symbol, state, t, out)
        return out

    def _finish_switch(self, error: str | None) -> None:
        switch = self.switch
        if switch is None:
            return
        self.switch = None
        self.tap = None
        if error is None:
            self.plan = switch.plan
            self.registry_version = switch.version
        else:
            for symbol, old in switch.restore().items():
                self.states[symbol] = old
                self.versions[symbol] = self.registry_version
            log.error("registry_switch_failed", version=switch.version, error=error)
        if switch.on_done is not None:
            switch.on_done(switch.version, error)

    def _switch_all(
        self, crossing: str | None, boundary: int | None, out: list[FeatureVector]
    ) -> None:
        """Move every symbol to the pending plan at ``boundary`` (``crossing`` reached it
        first), or none of them."""
        switch = self.switch
        assert switch is not None
        self.switch = None  # the closes below stay on the old plan and must not re-enter here
        tap, self.tap = self.tap or [], None
        try:
            for symbol, state in list(self.states.items()):
                if (
                    boundary is not None
                    and symbol != crossing
                    and self._next_close[symbol] != _UNSET
                ):
                    self._close_until(symbol, state, boundary - 1, out)
            new = switch.prepare(self.states, boundary, tap)
        except Exception as exc:
            self.switch = switch
            self._finish_switch(str(exc) if isinstance(exc, SwitchFailed) else repr(exc))
            return
        warm = switch.warm
        for symbol, state in new.items():
            if self._allowed is not None and symbol not in self._allowed:
                continue
            if symbol not in self.states and warm is not None:
                # A symbol only the store knew: its boundaries and data age as warmed.
                self._next_close[symbol] = warm._next_close[symbol]
                if symbol in warm._last_ts:
                    self._last_ts[symbol] = warm._last_ts[symbol]
            self.states[symbol] = state
            self.versions[symbol] = switch.version
        self.switch = switch
        self._finish_switch(None)

    # -- internals -----------------------------------------------------------------------------
    def _close_until(
        self, symbol: str, state: SymbolState, t: int, out: list[FeatureVector]
    ) -> SymbolState:
        boundary = self._next_close[symbol]
        if boundary == _UNSET:
            # The symbol's first event (or the first tick after a warm-up): nothing closes yet.
            self._next_close[symbol] = self.clock.first_boundary_after(t)
            return state
        step = self.clock.step_us
        while boundary <= t:
            switch = self.switch
            if (
                switch is not None
                and boundary >= switch.at_us
                and self.versions[symbol] != switch.version
            ):
                self._switch_all(symbol, boundary, out)
                state = self.states[symbol]
            closing = self.clock.closing_at(boundary)
            if closing:
                self._emit(symbol, state, boundary, closing, out)
            boundary += step
        self._next_close[symbol] = boundary
        return state

    def _emit(
        self,
        symbol: str,
        state: SymbolState,
        t: int,
        closing: tuple[int, ...],
        out: list[FeatureVector],
    ) -> None:
        started = time.perf_counter_ns()
        state.on_time(t)
        frame = state.compute(t)
        features = frame.complete()
        elapsed_us = (time.perf_counter_ns() - started) / 1000.0
        self.last_computation_us = elapsed_us
        if elapsed_us > self._latency_warning_us:
            self.slow_computations += 1
            log.warning(
                "feature_computation_slow",
                symbol=symbol,
                elapsed_ms=round(elapsed_us / 1000.0, 3),
                threshold_ms=self._latency_warning_us / 1000.0,
            )
        reasons = dict(frame.reasons)
        for name, reason in reasons.items():
            self.null_counts[(name, reason)] += len(closing)
        last = self._last_ts.get(symbol)
        age_ms = None if last is None else (t - last) / 1000.0
        depth_age = state.depth_age_us
        depth_age_ms = None if depth_age is None else depth_age / 1000.0
        stale = last is None or (t - last) > self._stale_after_us
        mask = self.quality.mask(symbol, t, state.book)
        for interval_s in closing:
            out.append(
                FeatureVector(
                    symbol=symbol,
                    timestamp=t,
                    interval_s=interval_s,
                    features=features,
                    registry_version=self.versions[symbol],
                    null_reasons=reasons,
                    trace_id=state.last_trace_id,
                    computation_us=elapsed_us,
                    data_age_ms=age_ms,
                    stale=stale,
                    depth_age_ms=depth_age_ms,
                    quality=mask,
                )
            )
        self.vectors_emitted += len(closing)
