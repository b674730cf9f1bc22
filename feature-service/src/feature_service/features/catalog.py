"""The feature catalog: the bundled registry's features in vector order, each with its family,
window and inputs as the family derives them from the name.

Names are the contract with the bundled Feature Registry YAML (version 1.1.0) and with model
consumers; other registry versions may compute any name a family derives (see ``library``).
"""

from __future__ import annotations

from feature_service.features.candles import CANDLE_FEATURES
from feature_service.features.library import FeatureDef, FeaturePlan
from feature_service.features.orderbook import ORDERBOOK_FEATURES
from feature_service.features.orderflow import ORDERFLOW_FEATURES
from feature_service.features.perpetual import PERPETUAL_FEATURES
from feature_service.features.price import PRICE_FEATURES
from feature_service.features.technical import TECHNICAL_FEATURES
from feature_service.features.temporal import TEMPORAL_FEATURES

FeatureSpec = FeatureDef

BUNDLED_PLAN = FeaturePlan.from_names(
    (
        *PRICE_FEATURES,
        *CANDLE_FEATURES,
        *ORDERFLOW_FEATURES,
        *ORDERBOOK_FEATURES,
        *PERPETUAL_FEATURES,
        *TEMPORAL_FEATURES,
        *TECHNICAL_FEATURES,
    ),
    version="1.1.0",
)
CATALOG: tuple[FeatureDef, ...] = BUNDLED_PLAN.defs
FEATURE_NAMES: tuple[str, ...] = BUNDLED_PLAN.names
INT_FEATURES: frozenset[str] = BUNDLED_PLAN.int_names
BY_NAME: dict[str, FeatureDef] = BUNDLED_PLAN.by_name
