-- Proofs and callback payloads are written once per transaction and block and read whole: JSON
-- text (checked on the way in), not JSONB, whose conversion dominated the cost of a block's events.
ALTER TABLE tx_blocks ALTER COLUMN proof TYPE JSON USING proof::json;
ALTER TABLE callbacks ALTER COLUMN payload TYPE JSON USING payload::json;
