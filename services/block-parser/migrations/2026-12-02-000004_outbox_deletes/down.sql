ALTER TABLE outbox ALTER COLUMN payload TYPE JSONB USING payload::jsonb;
CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;
