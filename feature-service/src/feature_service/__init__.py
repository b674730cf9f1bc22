"""Feature Service: live and offline trading features from Bybit market data."""

__version__ = "0.1.0"
