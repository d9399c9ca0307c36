-- Delivered events are deleted now (not marked): every row left is pending, read by id.
DROP INDEX outbox_pending;
-- Written once and read once: stored as JSON text (checked, not converted to JSONB's binary form,
-- which cost more than everything else of a parsed block).
ALTER TABLE outbox ALTER COLUMN payload TYPE JSON USING payload::json;
