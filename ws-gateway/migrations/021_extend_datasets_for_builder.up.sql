-- Feature Service: what the dataset builder keeps beyond the base data model.
--   status 'queued'         builds wait in a queue before they start building
--   split_strategy 'random' the spec allows a random split (for tests and experiments only)
--   progress                {"stage", "percent", "processed", "total", ...} while building
--   folds                   walk-forward fold metadata, one object per fold
--   warnings                non-fatal problems met while building
--   manifest                what was written: files, row counts, checksums, schema
--   feature_interval_s      the interval of the feature rows, in seconds
--   request                 the original build request, as received
ALTER TABLE datasets
    DROP CONSTRAINT datasets_status_check,
    ADD CONSTRAINT datasets_status_check
        CHECK (status IN ('queued', 'building', 'ready', 'failed')),
    DROP CONSTRAINT datasets_split_strategy_check,
    ADD CONSTRAINT datasets_split_strategy_check
        CHECK (split_strategy IN ('time_based', 'walk_forward', 'random')),
    ADD COLUMN progress JSONB,
    ADD COLUMN folds JSONB,
    ADD COLUMN warnings TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN manifest JSONB,
    ADD COLUMN feature_interval_s INTEGER NOT NULL DEFAULT 1,
    ADD COLUMN request JSONB,
    ADD CONSTRAINT datasets_feature_interval_s_check CHECK (feature_interval_s > 0);
