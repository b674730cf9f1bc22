-- SQLite twin of ../022_extend_datasets_for_builder.sql. SQLite cannot alter a CHECK, so the
-- table is rebuilt with the new constraints and columns, and the rows copied over. Unlike the
-- PostgreSQL file this one is not idempotent: a SQLite database is the service's own, applied
-- only by its runner, which records it (nobody applies these files by hand).
-- supersedes: 021_extend_datasets_for_builder 218bdc577fd9029b23d4e09946e1de82baf7f5fcd3f01b1d3b030fdca8452031
CREATE TABLE datasets_022 (
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
    progress TEXT CHECK (progress IS NULL OR json_valid(progress)),
    folds TEXT CHECK (folds IS NULL OR json_valid(folds)),
    warnings TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(warnings)),
    manifest TEXT CHECK (manifest IS NULL OR json_valid(manifest)),
    feature_interval_s INTEGER NOT NULL DEFAULT 1,
    request TEXT CHECK (request IS NULL OR json_valid(request)),
    CONSTRAINT datasets_status_check
        CHECK (status IN ('queued', 'building', 'ready', 'failed')),
    CONSTRAINT datasets_split_strategy_check
        CHECK (split_strategy IN ('time_based', 'walk_forward', 'random')),
    CONSTRAINT datasets_train_period_check
        CHECK (train_period_start < train_period_end),
    CONSTRAINT datasets_feature_interval_s_check CHECK (feature_interval_s > 0)
);

INSERT INTO datasets_022 (
    id, symbol, status, split_strategy, train_period_start, train_period_end,
    validation_period_start, validation_period_end, test_period_start, test_period_end,
    walk_forward_config, target_config, feature_registry_version, train_records,
    validation_records, test_records, output_format, storage_path, created_at, completed_at,
    estimated_completion, error_message
)
SELECT
    id, symbol, status, split_strategy, train_period_start, train_period_end,
    validation_period_start, validation_period_end, test_period_start, test_period_end,
    walk_forward_config, target_config, feature_registry_version, train_records,
    validation_records, test_records, output_format, storage_path, created_at, completed_at,
    estimated_completion, error_message
FROM datasets;

DROP TABLE datasets;
ALTER TABLE datasets_022 RENAME TO datasets;

CREATE INDEX idx_datasets_status ON datasets (status);
CREATE INDEX idx_datasets_symbol ON datasets (symbol);
CREATE INDEX idx_datasets_created_at ON datasets (created_at DESC);
