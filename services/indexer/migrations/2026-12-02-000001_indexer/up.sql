-- Per account: where tip-filter matches go (the reference keeps these on its accounts row).
CREATE TABLE tip_filter_settings (
    account_id BIGINT PRIMARY KEY,
    callback_url TEXT NULL,
    callback_token TEXT NULL,
    update_count INTEGER NOT NULL DEFAULT 0
);

-- Pushdata-hash registrations; flags 1 = FINALISED, 2 = DELETING (the reference's states).
CREATE TABLE tip_filters (
    account_id BIGINT NOT NULL,
    pushdata_hash BYTEA NOT NULL,
    flags INTEGER NOT NULL,
    date_created BIGINT NOT NULL,
    date_expires BIGINT NOT NULL,
    PRIMARY KEY (account_id, pushdata_hash)
);
CREATE INDEX tip_filters_by_hash ON tip_filters (pushdata_hash);

-- Outpoints an account watches for spends (while its account websocket is open).
CREATE TABLE spend_watches (
    tx_hash BYTEA NOT NULL,
    out_index BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tx_hash, out_index, account_id)
);
CREATE INDEX spend_watches_by_account ON spend_watches (account_id);

-- The spend index: spends of watched outpoints seen in the mempool (block_hash all zeros) or in
-- a block.
CREATE TABLE spends (
    tx_hash BYTEA NOT NULL,
    out_index BIGINT NOT NULL,
    in_tx_hash BYTEA NOT NULL,
    in_index BIGINT NOT NULL,
    block_hash BYTEA NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tx_hash, out_index, block_hash)
);

-- Best-chain blocks matched (native mode), so that each is matched once.
CREATE TABLE indexed_blocks (
    block_hash BYTEA PRIMARY KEY,
    height BIGINT NOT NULL,
    indexed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX indexed_blocks_by_height ON indexed_blocks (height);

-- Tip-filter match batches waiting to be handed to the notifier (which retries until delivered).
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    delivery_key TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
