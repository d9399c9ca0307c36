ALTER TABLE callbacks ALTER COLUMN payload TYPE JSONB USING payload::jsonb;
ALTER TABLE tx_blocks ALTER COLUMN proof TYPE JSONB USING proof::jsonb;
