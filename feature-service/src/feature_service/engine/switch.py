"""A scheduled registry-version switch of a FeatureEngine (hot reload).

Every symbol moves to the new plan at the same interval boundary ``at_us``, all at once: when
the first symbol reaches that boundary (receive times are stamped in one order for every
symbol, so every event before the boundary has been applied by then), the others first close
their earlier boundaries with the old plan, then every symbol's new state is prepared and
checked, and only if all of them succeed do they all replace the old ones. If anything fails
for any symbol, no symbol switches, the error names the symbol and the switch is reported
failed (``on_done(version, error)``): the previous version stays active.

The new states come from one of two places:

- ``warm``: an engine already running the new plan, warmed from the raw store
  (``services/plan_warmup.py``) as of a moment before the switch and fed, from that moment on,
  every event the live engine applied (``FeatureEngine.tap``). Its states are those of an engine
  that computed the new version all along, so the vectors after the switch equal an offline
  rebuild with the new version, including variants longer than what the old plan retained.
- otherwise each old state is migrated (``features.migrate``): what both plans share carries
  over and new operators warm from the retained state only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from feature_service.features.family import Family
from feature_service.features.library import FeaturePlan
from feature_service.features.migrate import migrate_state
from feature_service.features.state import SymbolState
from feature_service.market.events import MarketEvent

if TYPE_CHECKING:
    from feature_service.engine.core import FeatureEngine

SwitchDone = Callable[[str, str | None], None]


class SwitchFailed(Exception):
    """Preparing the new states failed (the message names the symbol)."""


@dataclass
class PlanSwitch:
    plan: FeaturePlan
    version: str
    at_us: int
    on_done: SwitchDone | None = None
    warm: FeatureEngine | None = None
    backups: dict[str, tuple[SymbolState, list[tuple[Family, dict[str, str]]]]] = field(
        default_factory=dict
    )
    error: str | None = None

    def prepare(
        self, states: Mapping[str, SymbolState], boundary: int | None, tap: list[MarketEvent]
    ) -> dict[str, SymbolState]:
        """The new state of every symbol in ``states`` (plus any the warm engine holds), with
        every boundary before ``boundary`` closed (None: nothing to close, no state existed);
        raises ``SwitchFailed``."""
        warm = self.warm
        if warm is None:
            return {s: self._migrated(s, old, boundary) for s, old in states.items()}
        symbol = "?"
        try:
            for event in tap:  # what the live engine applied since the warm-up's moment
                symbol = event.symbol
                warm.process(event)
            for symbol in list(warm.states) if boundary is not None else ():
                warm.advance_symbol_to(symbol, boundary - 1)  # computes: the first check
        except Exception as exc:
            raise SwitchFailed(_failure(self.version, "warm-up", symbol, exc)) from exc
        out = dict(warm.states)
        for symbol, state in out.items():
            try:
                _first_computation(state, boundary)
            except Exception as exc:
                raise SwitchFailed(
                    _failure(self.version, "first computation", symbol, exc)
                ) from exc
        for symbol, old in states.items():
            if symbol not in out:  # nothing stored and nothing since: what the state holds
                out[symbol] = self._migrated(symbol, old, boundary)
        return out

    def _migrated(self, symbol: str, old: SymbolState, boundary: int | None) -> SymbolState:
        # Operators carried over get the new output names; keep the old ones to move back.
        self.backups[symbol] = (old, [(op, op.names) for op in old.operators])
        try:
            new = migrate_state(old, self.plan)
            _first_computation(new, boundary)
        except Exception as exc:
            raise SwitchFailed(_failure(self.version, "first computation", symbol, exc)) from exc
        return new

    def restore(self) -> dict[str, SymbolState]:
        """The pre-switch state of every symbol migrated so far."""
        restored: dict[str, SymbolState] = {}
        for symbol, (old, names) in self.backups.items():
            for op, saved in names:
                op.names = saved
            restored[symbol] = old
        return restored


def _first_computation(state: SymbolState, boundary: int | None) -> None:
    """The vector at the switch boundary, computed before anything switches (it must succeed
    for every symbol). Computing a close twice gives the same frame, so the engine's own
    computation of it afterwards is unaffected."""
    if boundary is not None:
        state.on_time(boundary)
        state.compute(boundary).complete()


def _failure(version: str, step: str, symbol: str, exc: BaseException) -> str:
    return f"{step} of {version} failed for {symbol}: {type(exc).__name__}: {exc}"
