"""A scheduled registry-version switch of a FeatureEngine (hot reload).

Every symbol moves to the new plan at the same interval boundary ``at_us``: its state is
migrated (``features.migrate``) just before the first vector at or after ``at_us`` is computed,
between two events, so no event is lost or applied twice and every vector from that boundary on
carries the new version. If the first computation with the new plan raises, the symbol's old
state is restored, the symbols already moved are moved back, and the switch is reported failed
(``on_done(version, error)``): the previous version stays active.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from feature_service.features.family import Family
from feature_service.features.library import FeaturePlan
from feature_service.features.migrate import migrate_state
from feature_service.features.state import SymbolState

SwitchDone = Callable[[str, str | None], None]


@dataclass
class PlanSwitch:
    plan: FeaturePlan
    version: str
    at_us: int
    on_done: SwitchDone | None = None
    backups: dict[str, tuple[SymbolState, list[tuple[Family, dict[str, str]]]]] = field(
        default_factory=dict
    )
    error: str | None = None

    def migrate(self, symbol: str, old: SymbolState) -> SymbolState:
        # Operators carried over get the new output names; keep the old ones to move back.
        names = [(op, op.names) for op in old.operators]
        self.backups[symbol] = (old, names)
        return migrate_state(old, self.plan)

    def restore(self) -> dict[str, SymbolState]:
        """The pre-switch state of every symbol moved so far."""
        restored: dict[str, SymbolState] = {}
        for symbol, (old, names) in self.backups.items():
            for op, saved in names:
                op.names = saved
            restored[symbol] = old
        return restored
