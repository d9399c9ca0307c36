-- Transactions mapi submitted: a block holding one yields a "mined" event with its Merkle proof.
CREATE TABLE registered_txids (
    txid BYTEA PRIMARY KEY CHECK (length(txid) = 32),
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Which best-chain blocks are to be parsed (those that joined the best chain while the service
-- followed it; the history below the first header is not), and when each was.
ALTER TABLE headers ADD COLUMN parse_wanted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE headers ADD COLUMN parsed_at TIMESTAMPTZ NULL;
ALTER TABLE headers ADD COLUMN parse_errors INTEGER NOT NULL DEFAULT 0;
ALTER TABLE headers ADD COLUMN parse_bytes BIGINT NULL;
CREATE INDEX headers_to_parse ON headers (height) WHERE parse_wanted AND parsed_at IS NULL AND on_best_chain;

-- Events for mapi, written in the transaction that causes them and kept until mapi answered 2xx.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    payload JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at TIMESTAMPTZ NULL
);
CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;

-- Outpoints spent by mapi's dsCheck transactions and their unconfirmed ancestors: a block input
-- spending one from another transaction is a double spend.
CREATE TABLE registered_spends (
    prev_txid BYTEA NOT NULL CHECK (length(prev_txid) = 32),
    prev_n BIGINT NOT NULL,
    txid BYTEA NOT NULL CHECK (length(txid) = 32),
    PRIMARY KEY (prev_txid, prev_n, txid)
);
CREATE INDEX registered_spends_txid ON registered_spends (txid);

-- Where a registered transaction was last found: registrations buried deeper than a followed
-- fork are dropped.
ALTER TABLE registered_txids ADD COLUMN mined_height BIGINT NULL;
CREATE INDEX registered_txids_mined ON registered_txids (mined_height) WHERE mined_height IS NOT NULL;
