-- SQLite twin of ../018_create_datasets_table.sql. UUIDs are canonical lower-case text, JSON is
-- text (checked with json_valid), timestamps are UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' so that
-- text comparison orders them.
-- supersedes: 018_create_datasets_table 307f908ac95182d7dd93318cc5bc82da4b5d9ae8da02c94022e5613478fa443c
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY NOT NULL,
    symbol VARCHAR(20) NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'building',
    split_strategy VARCHAR(50) NOT NULL,
    train_period_start TEXT,
    train_period_end TEXT,
    validation_period_start TEXT,
    validation_period_end TEXT,
    test_period_start TEXT,
    test_period_end TEXT,
    walk_forward_config TEXT CHECK (walk_forward_config IS NULL OR json_valid(walk_forward_config)),
    target_config TEXT NOT NULL CHECK (json_valid(target_config)),
    feature_registry_version VARCHAR(50) NOT NULL,
    train_records INTEGER DEFAULT 0,
    validation_records INTEGER DEFAULT 0,
    test_records INTEGER DEFAULT 0,
    output_format VARCHAR(20) NOT NULL DEFAULT 'parquet',
    storage_path VARCHAR(500),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    completed_at TEXT,
    estimated_completion TEXT,
    error_message TEXT,
    CONSTRAINT datasets_status_check
        CHECK (status IN ('building', 'ready', 'failed')),
    CONSTRAINT datasets_split_strategy_check
        CHECK (split_strategy IN ('time_based', 'walk_forward')),
    CONSTRAINT datasets_train_period_check
        CHECK (train_period_start < train_period_end)
);

CREATE INDEX IF NOT EXISTS idx_datasets_status ON datasets (status);
CREATE INDEX IF NOT EXISTS idx_datasets_symbol ON datasets (symbol);
CREATE INDEX IF NOT EXISTS idx_datasets_created_at ON datasets (created_at DESC);
