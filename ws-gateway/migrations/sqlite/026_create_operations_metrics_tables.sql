-- SQLite twin of ../026_create_operations_metrics_tables.sql: ids and times are TEXT (UUID text;
-- 'YYYY-MM-DD HH:MM:SS.ffffff' UTC), the interval pattern is checked with GLOB.
CREATE TABLE IF NOT EXISTS feature_computation_metrics (
    id TEXT PRIMARY KEY NOT NULL,
    symbol VARCHAR(20) NOT NULL,
    computation_timestamp TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    feature_registry_version VARCHAR(50) NOT NULL,
    computation_interval VARCHAR(10) NOT NULL
        CHECK (computation_interval GLOB '[0-9]*[smh]'),
    features_count INTEGER NOT NULL,
    error_count INTEGER DEFAULT 0,
    trace_id VARCHAR(100),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS idx_feature_computation_metrics_timestamp
    ON feature_computation_metrics (computation_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_feature_computation_metrics_symbol
    ON feature_computation_metrics (symbol);
CREATE INDEX IF NOT EXISTS idx_feature_computation_metrics_registry_version
    ON feature_computation_metrics (feature_registry_version);

CREATE TABLE IF NOT EXISTS dataset_building_metrics (
    id TEXT PRIMARY KEY NOT NULL,
    dataset_id TEXT NOT NULL,
    symbol VARCHAR(20) NOT NULL,
    build_started_at TEXT NOT NULL,
    build_completed_at TEXT,
    build_status VARCHAR(20) NOT NULL CHECK (build_status IN ('building', 'ready', 'failed')),
    build_duration_seconds INTEGER,
    records_count INTEGER,
    train_records INTEGER,
    validation_records INTEGER,
    test_records INTEGER,
    feature_registry_version VARCHAR(50) NOT NULL,
    split_strategy VARCHAR(50),
    trace_id VARCHAR(100),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS idx_dataset_building_metrics_started
    ON dataset_building_metrics (build_started_at DESC);
CREATE INDEX IF NOT EXISTS idx_dataset_building_metrics_dataset_id
    ON dataset_building_metrics (dataset_id);
CREATE INDEX IF NOT EXISTS idx_dataset_building_metrics_symbol
    ON dataset_building_metrics (symbol);
CREATE INDEX IF NOT EXISTS idx_dataset_building_metrics_status
    ON dataset_building_metrics (build_status);

CREATE TABLE IF NOT EXISTS api_endpoint_metrics (
    id TEXT PRIMARY KEY NOT NULL,
    endpoint VARCHAR(200) NOT NULL,
    method VARCHAR(10) NOT NULL,
    response_time_ms REAL NOT NULL,
    status_code INTEGER NOT NULL,
    symbol VARCHAR(20),
    request_timestamp TEXT NOT NULL,
    trace_id VARCHAR(100),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS idx_api_endpoint_metrics_timestamp
    ON api_endpoint_metrics (request_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_api_endpoint_metrics_endpoint
    ON api_endpoint_metrics (endpoint);
CREATE INDEX IF NOT EXISTS idx_api_endpoint_metrics_method
    ON api_endpoint_metrics (method);
CREATE INDEX IF NOT EXISTS idx_api_endpoint_metrics_status
    ON api_endpoint_metrics (status_code);
