-- Feature Service: operations metrics behind the Grafana panels (spec T196, T198, T199).
-- Rows are written in batches by the service's background metrics writer (a slow or absent
-- database never slows feature computation; rows it cannot write are counted and dropped) and
-- deleted after FEATURE_SERVICE_METRICS_RETENTION_DAYS by the service itself.
-- computation_interval accepts any "<n>s|m|h" label instead of the spec's four values: the
-- intervals are configurable (FEATURE_SERVICE_INTERVALS).
-- error_count is the number of features that were null in that vector.
-- Idempotent: running it again changes nothing.

CREATE TABLE IF NOT EXISTS feature_computation_metrics (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    symbol VARCHAR(20) NOT NULL,
    computation_timestamp TIMESTAMP NOT NULL,
    latency_ms DECIMAL(10, 3) NOT NULL,
    feature_registry_version VARCHAR(50) NOT NULL,
    computation_interval VARCHAR(10) NOT NULL
        CONSTRAINT feature_computation_metrics_interval_check
        CHECK (computation_interval ~ '^[0-9]+[smh]$'),
    features_count INTEGER NOT NULL,
    error_count INTEGER DEFAULT 0,
    trace_id VARCHAR(100),
    created_at TIMESTAMP NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_feature_computation_metrics_timestamp
    ON feature_computation_metrics (computation_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_feature_computation_metrics_symbol
    ON feature_computation_metrics (symbol);
CREATE INDEX IF NOT EXISTS idx_feature_computation_metrics_registry_version
    ON feature_computation_metrics (feature_registry_version);

-- One row per build: inserted when it starts ('building'), updated when it ends.
CREATE TABLE IF NOT EXISTS dataset_building_metrics (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    dataset_id UUID NOT NULL,
    symbol VARCHAR(20) NOT NULL,
    build_started_at TIMESTAMP NOT NULL,
    build_completed_at TIMESTAMP,
    build_status VARCHAR(20) NOT NULL
        CONSTRAINT dataset_building_metrics_status_check
        CHECK (build_status IN ('building', 'ready', 'failed')),
    build_duration_seconds INTEGER,
    records_count INTEGER,
    train_records INTEGER,
    validation_records INTEGER,
    test_records INTEGER,
    feature_registry_version VARCHAR(50) NOT NULL,
    split_strategy VARCHAR(50),
    trace_id VARCHAR(100),
    created_at TIMESTAMP NOT NULL DEFAULT NOW()
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
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    endpoint VARCHAR(200) NOT NULL,
    method VARCHAR(10) NOT NULL,
    response_time_ms DECIMAL(10, 3) NOT NULL,
    status_code INTEGER NOT NULL,
    symbol VARCHAR(20),
    request_timestamp TIMESTAMP NOT NULL,
    trace_id VARCHAR(100),
    created_at TIMESTAMP NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_api_endpoint_metrics_timestamp
    ON api_endpoint_metrics (request_timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_api_endpoint_metrics_endpoint
    ON api_endpoint_metrics (endpoint);
CREATE INDEX IF NOT EXISTS idx_api_endpoint_metrics_method
    ON api_endpoint_metrics (method);
CREATE INDEX IF NOT EXISTS idx_api_endpoint_metrics_status
    ON api_endpoint_metrics (status_code);
