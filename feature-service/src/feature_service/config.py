"""Service configuration: every knob is a FEATURE_SERVICE_* environment variable (see env.example).

Unset URLs mean the embedded defaults: an in-process bus, a SQLite file, a local Parquet folder
and the bundled sample recording as the input. Production sets the RabbitMQ / PostgreSQL URLs and
nothing else changes.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from feature_service.market.values import ParseLimits

DEMO_API_KEY = "demo-key"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FEATURE_SERVICE_", env_file=".env", extra="ignore", frozen=True
    )

    # HTTP
    host: str = "127.0.0.1"
    port: int = 4500
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [DEMO_API_KEY])

    # Adapters (unset = embedded default)
    rabbitmq_url: str | None = None
    database_url: str | None = None
    ws_gateway_url: str | None = None
    ws_gateway_api_key: str | None = None

    # Upstream (ws-gateway subscriptions, book depth; README "Upstream limits")
    # The depth asked for in the orderbook subscription's topic (Bybit linear: 1, 50, 200, 1000).
    orderbook_depth: int = Field(default=50, ge=1, le=1000)
    # Subscribe to and expect the funding stream: Bybit has no fundingRate.{SYMBOL} topic, so
    # by default funding comes from the ticker and the funding queue is not expected to carry data.
    funding_stream: bool = False
    subscription_max_attempts: int = Field(default=3, ge=1)
    subscription_retry_interval_s: float = Field(default=300.0, gt=0)
    # "rest": a depth book from Bybit REST /v5/market/orderbook (FEATURE_SERVICE_BYBIT_REST_URL,
    # _BYBIT_CATEGORY) feeds the depth features; mid, spread and churn stay on the stream.
    depth_source: Literal["stream", "rest"] = "stream"
    depth_rest_limit: int = Field(default=50, ge=10, le=1000)
    depth_rest_interval_s: float = Field(default=1.0, gt=0)
    # The depth source's own share of Bybit's IP limit (600 requests / 5 s), in requests/s: the
    # backfill client keeps 500 / 5 s, so the two together stay under it.
    depth_rest_max_rps: float = Field(default=10.0, gt=0, le=20)

    # Data
    data_dir: Path = Path("data")
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["BTCUSDT"])
    registry_path: Path | None = None
    # Registry versions as YAML files (feature_registry_v{version}.yaml); default DATA_DIR/registry
    registry_versions_dir: Path | None = None
    migrations_dir: Path | None = None

    # Features
    intervals: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [1, 3, 15, 60])
    stale_after_s: float = 5.0
    latency_warning_ms: float = 70.0

    # Bus
    # Above the raw flush batch: messages are acked only once their batch is on disk.
    prefetch: int = 10000
    queue_orderbook: str = "ws-gateway.orderbook"
    queue_trade: str = "ws-gateway.trade"
    queue_kline: str = "ws-gateway.kline"
    queue_ticker: str = "ws-gateway.ticker"
    queue_funding: str = "ws-gateway.funding"
    queue_order: str = "ws-gateway.order"
    consume_orders: bool = False
    dead_letter_queue: str = "feature-service.dead-letter"
    features_exchange: str = "features.live"
    # features.live is for live use (a late consumer must not read a day of stale vectors):
    # vectors expire after this TTL, and the queue holds at most max_length of them (0 = sized
    # from symbols x intervals: what one TTL produces, x2), dropping the oldest.
    features_live_ttl_s: float = Field(default=60.0, gt=0)
    features_live_max_length: int = Field(default=0, ge=0)
    # RabbitMQ management API (http://user:pass@host:15672): used to apply a policy when the
    # broker already holds features.live with other arguments; unset = warn with the command.
    rabbitmq_management_url: str | None = None
    dataset_ready_queue: str = "features.dataset.ready"
    dataset_build_parallelism: int = 1
    dataset_max_period_days: float = 366.0  # longer dataset periods are refused (400)

    # Embedded replay source (used when rabbitmq_url is unset)
    replay_enabled: bool = True
    replay_path: Path | None = None
    replay_speed: float = 10.0
    replay_loop: bool = True

    # Health and timeouts
    market_data_stale_after_s: float = 60.0  # no event for a subscribed symbol this long: not ready
    health_timeout_s: float = 2.0  # each dependency probe of /health
    db_timeout_s: float = 5.0  # metadata store: connect, pool acquire and each query
    rabbitmq_heartbeat_s: int = 5  # a silent broker is detected after ~3 missed heartbeats
    publish_timeout_s: float = 5.0  # a publish without confirm by then fails (never re-sent)

    # Input limits (market/values.py documents every bound)
    max_message_bytes: int = 1_048_576
    time_window_s: float = 86_400.0  # exchange/gateway times vs. our receive time, either side
    kline_window_s: float = 172_800.0  # how old a kline may be (the candle warm-up is 25 h)

    # Raw storage (off: acknowledge after the engine step; for compute-only replicas)
    raw_store_enabled: bool = True
    raw_flush_rows: int = 5000
    raw_flush_age_s: float = 1.0
    retention_days: int = 90
    archive_retention_days: int = 365
    retention_check_interval_s: float = 3600.0
    compact_after_days: int | None = 1

    # Continuity: book checkpoints into the raw store, and state restored from it at start-up
    checkpoint_interval_s: float = 60.0
    warm_start: bool = True
    # Data quality (thresholds: quality/config.py; reports and resync: README "Data quality")
    quality_skew_threshold_ms: float = 1000.0
    quality_jump_k: float = 10.0
    quality_jump_min_return: float = 0.002
    quality_trade_outside_tolerance: float = 0.005
    quality_recorder_interval_s: float = 5.0
    resync_enabled: bool = True
    resync_min_interval_s: float = 2.0
    resync_max_interval_s: float = 60.0

    # Bybit REST (backfill). Public market data needs no key; testnet: https://api-testnet.bybit.com
    bybit_rest_url: str = "https://api.bybit.com"
    bybit_category: Literal["linear", "spot", "inverse"] = "linear"
    bybit_timeout_s: float = 10.0
    bybit_max_retries: int = 5
    bybit_api_key: str | None = None
    bybit_api_secret: str | None = None

    # Backfill (history from Bybit REST)
    backfill_enabled: bool = True
    backfill_auto: bool = False
    backfill_max_days: int = 90
    backfill_default_interval: str = "1"
    # Bybit bans an IP for >= 10 min above 600 requests / 5 s: the bucket stays below it.
    backfill_rate_limit_requests: int = 500
    backfill_rate_limit_window_s: float = 5.0
    backfill_rate_limit_delay_ms: float = 0.0

    # Operations metrics tables (feature_computation_metrics, dataset_building_metrics,
    # api_endpoint_metrics), written in the background; rows older than the retention deleted.
    metrics_tables_enabled: bool = True
    metrics_retention_days: float = 30.0
    metrics_flush_s: float = 2.0
    metrics_queue_size: int = 20000
    metrics_write_timeout_s: float = 5.0

    # Logging
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("api_keys", "symbols", "intervals", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("symbols")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [s.upper() for s in value]

    @field_validator("intervals")
    @classmethod
    def _intervals(cls, value: list[int]) -> list[int]:
        if not value or any(i <= 0 for i in value):
            raise ValueError("intervals must be positive whole seconds")
        return sorted(set(value))

    @cached_property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @cached_property
    def vectors_dir(self) -> Path:
        return self.data_dir / "features"

    @cached_property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @cached_property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @cached_property
    def quality_dir(self) -> Path:
        return self.data_dir / "quality"

    @cached_property
    def registry_dir(self) -> Path:
        return self.registry_versions_dir or self.data_dir / "registry"

    @cached_property
    def sqlite_path(self) -> Path:
        return self.data_dir / "feature-service.sqlite3"

    @property
    def parse_limits(self) -> ParseLimits:
        return ParseLimits(
            max_message_bytes=self.max_message_bytes,
            time_window_us=int(self.time_window_s * 1_000_000),
            kline_window_us=int(self.kline_window_s * 1_000_000),
        )

    @property
    def expected_inputs(self) -> tuple[str, ...]:
        """The input streams that should carry data (what a quality monitor may call missing):
        the funding queue only when the funding stream is configured."""
        base = ("orderbook", "trade", "kline", "ticker")
        return (*base, "funding") if self.funding_stream else base

    @property
    def input_queues(self) -> dict[str, str]:
        queues = {
            "orderbook": self.queue_orderbook,
            "trade": self.queue_trade,
            "kline": self.queue_kline,
            "ticker": self.queue_ticker,
            "funding": self.queue_funding,
        }
        return queues


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
