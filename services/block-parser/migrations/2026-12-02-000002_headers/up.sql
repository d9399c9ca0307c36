-- The header chain: every header seen on a node's best chain (and the forks a node took), the best
-- chain marked. Hashes in internal byte order; chain work as 32 big-endian bytes (as the node
-- reports it), so comparing the bytes compares the work.
CREATE TABLE headers (
    hash BYTEA PRIMARY KEY CHECK (length(hash) = 32),
    height BIGINT NOT NULL CHECK (height >= 0),
    prev_hash BYTEA NOT NULL,
    header BYTEA NOT NULL CHECK (length(header) = 80),
    chain_work BYTEA NOT NULL CHECK (length(chain_work) = 32),
    tx_count BIGINT NOT NULL,
    on_best_chain BOOLEAN NOT NULL DEFAULT FALSE,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX headers_prev ON headers (prev_hash);
CREATE INDEX headers_work ON headers (chain_work DESC, seen_at);
-- One best header per height.
CREATE UNIQUE INDEX headers_best_height ON headers (height) WHERE on_best_chain;
