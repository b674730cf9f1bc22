-- Feature Service: datasets built for model training (one row per build request).
-- supersedes: 018_create_datasets_table 8e8518359e89a730b9eb11445b56d19ad722aab84db992813d96d1466de59509
-- Idempotent (ws-gateway's operator applies this folder with psql, and the table may already
-- exist from ws-gateway's own 018): an existing table is kept as it is; the service checks its
-- columns when it adopts it.
-- Timestamps are TIMESTAMP WITHOUT TIME ZONE holding UTC; defaults use NOW() AT TIME ZONE 'UTC'
-- so the stored value does not depend on the session's TimeZone setting.
CREATE TABLE IF NOT EXISTS datasets (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    symbol VARCHAR(20) NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'building',
    split_strategy VARCHAR(50) NOT NULL,
    train_period_start TIMESTAMP,
    train_period_end TIMESTAMP,
    validation_period_start TIMESTAMP,
    validation_period_end TIMESTAMP,
    test_period_start TIMESTAMP,
    test_period_end TIMESTAMP,
    walk_forward_config JSONB,
    target_config JSONB NOT NULL,
    feature_registry_version VARCHAR(50) NOT NULL,
    train_records INTEGER DEFAULT 0,
    validation_records INTEGER DEFAULT 0,
    test_records INTEGER DEFAULT 0,
    output_format VARCHAR(20) NOT NULL DEFAULT 'parquet',
    storage_path VARCHAR(500),
    created_at TIMESTAMP NOT NULL DEFAULT (NOW() AT TIME ZONE 'UTC'),
    completed_at TIMESTAMP,
    estimated_completion TIMESTAMP,
    error_message TEXT,
    CONSTRAINT datasets_status_check
        CHECK (status IN ('building', 'ready', 'failed')),
    CONSTRAINT datasets_split_strategy_check
        CHECK (split_strategy IN ('time_based', 'walk_forward')),
    -- The only ordering rule SQL enforces; the full chain is validated by the service.
    CONSTRAINT datasets_train_period_check
        CHECK (train_period_start < train_period_end)
);

CREATE INDEX IF NOT EXISTS idx_datasets_status ON datasets (status);
CREATE INDEX IF NOT EXISTS idx_datasets_symbol ON datasets (symbol);
CREATE INDEX IF NOT EXISTS idx_datasets_created_at ON datasets (created_at DESC);
