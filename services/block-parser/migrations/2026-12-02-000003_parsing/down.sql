DROP TABLE registered_spends;
DROP TABLE outbox;
DROP INDEX headers_to_parse;
ALTER TABLE headers DROP COLUMN parse_bytes, DROP COLUMN parse_errors, DROP COLUMN parsed_at, DROP COLUMN parse_wanted;
DROP TABLE registered_txids;
