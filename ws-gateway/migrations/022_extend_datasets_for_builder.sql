-- Feature Service: what the dataset builder keeps beyond the base data model.
-- supersedes: 021_extend_datasets_for_builder 5277e0df206c066d3a8420c9a9c66a04e2b54a7f0bbbf645a1640885f05aeba6
--   (this was our 021 before ws-gateway took that number for its own migration)
--   status 'queued'         builds wait in a queue before they start building
--   split_strategy 'random' the spec allows a random split (for tests and experiments only)
--   progress                {"stage", "percent", "processed", "total", ...} while building
--   folds                   walk-forward fold metadata, one object per fold
--   warnings                non-fatal problems met while building
--   manifest                what was written: files, row counts, checksums, schema
--   feature_interval_s      the interval of the feature rows, in seconds
--   request                 the original build request, as received
-- Idempotent: running it again changes nothing.

-- The status and split_strategy CHECKs are replaced whatever they are called: a table made by
-- another tool may carry them under other names (a column CHECK gets a generated name), and a
-- leftover narrower CHECK would still refuse 'queued' or 'random'.
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN
        SELECT con.conname
        FROM pg_constraint con
        JOIN pg_attribute att
            ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
        WHERE con.conrelid = 'datasets'::regclass
          AND con.contype = 'c'
          AND cardinality(con.conkey) = 1
          AND att.attname IN ('status', 'split_strategy')
    LOOP
        EXECUTE format('ALTER TABLE datasets DROP CONSTRAINT %I', found.conname);
    END LOOP;
END
$$;

ALTER TABLE datasets
    ADD CONSTRAINT datasets_status_check
        CHECK (status IN ('queued', 'building', 'ready', 'failed')),
    ADD CONSTRAINT datasets_split_strategy_check
        CHECK (split_strategy IN ('time_based', 'walk_forward', 'random')),
    ADD COLUMN IF NOT EXISTS progress JSONB,
    ADD COLUMN IF NOT EXISTS folds JSONB,
    ADD COLUMN IF NOT EXISTS warnings TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS manifest JSONB,
    ADD COLUMN IF NOT EXISTS feature_interval_s INTEGER NOT NULL DEFAULT 1,
    ADD COLUMN IF NOT EXISTS request JSONB;

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'datasets'::regclass AND conname = 'datasets_feature_interval_s_check'
    ) THEN
        ALTER TABLE datasets
            ADD CONSTRAINT datasets_feature_interval_s_check CHECK (feature_interval_s > 0);
    END IF;
END
$$;
