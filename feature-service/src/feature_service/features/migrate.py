"""Moving one symbol's state to another registry version's plan (hot reload) without a replay.

What the new plan keeps is carried over as it is, so a feature both versions compute goes on
with bit-identical values: the order book, the trade buffer (new spans are added to it), the
mid grid and kline history when they already hold what the new plan needs, and every operator
whose family and parameters are unchanged, with its state. What is new warms up from the state
the engine retains: new trade windows count the trades still held, a rebuilt mid grid or kline
history is refilled from the old one, and new kline-fed operators (``rsi_7``) are fed every held
close in order -- so they are complete at once where the retained history is long enough, and
report ``warming_up`` until then otherwise.
"""

from __future__ import annotations

from feature_service.features.library import FeaturePlan, operator_key
from feature_service.features.state import DEFAULT_CHURN_WINDOW_US, KLINE_MIN_LEN, SymbolState
from feature_service.market.events import US_PER_S
from feature_service.windows.klines import KlineHistory
from feature_service.windows.mids import MidGrid


def migrate_state(old: SymbolState, plan: FeaturePlan) -> SymbolState:
    """A state computing ``plan`` that continues ``old`` (which must not be used afterwards)."""
    new = SymbolState(old.symbol, plan)
    req = plan.requirements
    new.book = old.book
    churn_us = 2 * (req.churn_window_us or DEFAULT_CHURN_WINDOW_US)
    new.book.churn_window_us = max(new.book.churn_window_us, churn_us)

    old.trades.ensure_spans(req.trade_spans_us)
    new.trades = old.trades

    grid = old.mids
    if grid.horizon_s >= req.mid_horizon_s and req.mid_return_spans_s <= set(grid.return_spans_s):
        new.mids = grid
    else:
        _refill_grid(grid, new.mids)

    maxlen = max(KLINE_MIN_LEN, req.kline_len + 1)
    means, prev, rets = req.kline_volume_means, req.kline_previous_volumes, req.kline_return_stds
    if old.klines.tracks(maxlen, means, prev, rets):
        new.klines = old.klines
    else:
        _refill_history(old.klines, new.klines)

    kept = {operator_key(op): op for op in old.operators}
    ops = []
    for op in new.operators:
        carried = kept.get(operator_key(op))
        if carried is not None:
            carried.names = op.names
            ops.append(carried)
            continue
        if op.uses_klines:
            for close in new.klines.closes:
                op.update(close)
        ops.append(op)
    old_norms = {(n.name, n.spec): n for n in old.normalizers}
    norms = [old_norms.get((n.name, n.spec), n) for n in new.normalizers]
    new.adopt(ops, norms)

    new.stream_depth = old.stream_depth
    new.rest_depth = old.rest_depth
    new.depth_age_us = old.depth_age_us
    new.ticker = old.ticker
    new.funding_rate = old.funding_rate
    new.next_funding_time = old.next_funding_time
    new.last_trace_id = old.last_trace_id
    return new


def _refill_grid(old: MidGrid, new: MidGrid) -> None:
    last = old.last_boundary
    if last is None:
        return
    keep = min(old.horizon_s, new.horizon_s)
    for k in range(keep - 1, -1, -1):
        boundary = last - k * US_PER_S
        new.record(boundary, old.at(boundary))


def _refill_history(old: KlineHistory, new: KlineHistory) -> None:
    for kline in old.last(len(old)):
        new.add(kline)
