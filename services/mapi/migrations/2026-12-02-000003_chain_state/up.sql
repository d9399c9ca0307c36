-- Registration with block-parser: a row whose block mapi wants to hear of is registered before it
-- is sent to a node (and by the registration worker while `registered_at` is NULL).
ALTER TABLE txs ADD COLUMN registered_at TIMESTAMPTZ NULL;
CREATE INDEX txs_unregistered ON txs (received_at) WHERE registered_at IS NULL;

-- The blocks block-parser found a transaction in, with its proof (checked against the header
-- there) and whether the block is on the best chain now (a reorg clears it; a block of another
-- branch adds its own row).
CREATE TABLE tx_blocks (
    tx_internal_id BIGINT NOT NULL REFERENCES txs (tx_internal_id) ON DELETE CASCADE,
    block_hash BYTEA NOT NULL,
    block_height BIGINT NOT NULL,
    header BYTEA NOT NULL,
    proof JSONB NOT NULL,
    on_active_chain BOOLEAN NOT NULL DEFAULT TRUE,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tx_internal_id, block_hash)
);
CREATE INDEX tx_blocks_block ON tx_blocks (block_hash);
CREATE INDEX tx_blocks_active ON tx_blocks (tx_internal_id) WHERE on_active_chain;

-- The best tip block-parser last reported (one row).
CREATE TABLE chain_tip (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    block_hash BYTEA NOT NULL,
    block_height BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A dsCheck transaction (or one whose unconfirmed ancestor it is) double spent in a block.
CREATE TABLE tx_block_double_spends (
    tx_internal_id BIGINT NOT NULL REFERENCES txs (tx_internal_id) ON DELETE CASCADE,
    block_hash BYTEA NOT NULL,
    block_height BIGINT NOT NULL,
    ds_txid BYTEA NOT NULL,
    ds_tx_payload BYTEA NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tx_internal_id, block_hash, ds_txid)
);

-- A dsCheck transaction a node saw a conflicting transaction for (ZMQ `invalidtx`, DSNT).
CREATE TABLE tx_mempool_double_spend_attempts (
    tx_internal_id BIGINT NOT NULL REFERENCES txs (tx_internal_id) ON DELETE CASCADE,
    ds_txid BYTEA NOT NULL,
    ds_tx_payload BYTEA NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tx_internal_id, ds_txid)
);

-- Callback requests, one per due notification, written in the transaction that makes it due and
-- kept (no foreign key: a cleaned-up transaction does not take its callbacks with it) until the
-- notifier has taken them. `payload` holds every field of the callback but the envelope's
-- `apiVersion`, `timestamp` and `minerId`, which are added when it is signed for delivery.
CREATE TABLE callbacks (
    id BIGSERIAL PRIMARY KEY,
    tx_internal_id BIGINT NOT NULL,
    txid BYTEA NOT NULL,
    reason VARCHAR(32) NOT NULL CHECK (reason IN ('merkleProof', 'doubleSpend', 'doubleSpendAttempt')),
    block_hash BYTEA NULL,
    ds_txid BYTEA NULL,
    url VARCHAR(1024) NOT NULL,
    token VARCHAR(256) NULL,
    encryption VARCHAR(1024) NULL,
    payload JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    taken_at TIMESTAMPTZ NULL,
    UNIQUE NULLS NOT DISTINCT (tx_internal_id, reason, block_hash, ds_txid)
);
CREATE INDEX callbacks_waiting ON callbacks (id) WHERE taken_at IS NULL;
