-- DSNT callers (nodes calling /dsnt/1/*), keyed by the caller's address: ban scores, query
-- counters over sliding windows, and which transactions a caller queried (and may submit a proof
-- for). Shared by every mapi replica: a node may query one and submit to another. Each row lives
-- until `expires_at`, which every increase moves (a sliding window); expired rows count as absent
-- and are swept.
CREATE TABLE dsnt_counters (
    kind SMALLINT NOT NULL, -- 1 ban score, 2 queries of a known transaction, 3 queries of unknown ones, 4 queried
    caller TEXT NOT NULL,
    txid BYTEA NOT NULL DEFAULT '\x',
    value INT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, caller, txid)
);
CREATE INDEX dsnt_counters_expiry ON dsnt_counters (expires_at);
