"""Rolling windows: trades (running sums), 1 s mid grid, confirmed 1 m kline history."""

from feature_service.windows.klines import KlineHistory
from feature_service.windows.mids import MidGrid, ReturnMoments
from feature_service.windows.trades import TradeStats, TradeWindows

__all__ = ["KlineHistory", "MidGrid", "ReturnMoments", "TradeStats", "TradeWindows"]
