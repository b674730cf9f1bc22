"""Order book manager: one symbol's book from Bybit snapshots and deltas."""

from feature_service.book.orderbook import BookStats, BookStatus, BookUpdate, OrderBook

__all__ = ["BookStats", "BookStatus", "BookUpdate", "OrderBook"]
