-- Transactions mAPI accepted for submission. Stored before they are sent to any node (status -1),
-- so nothing a client was told is accepted can be lost. Status as in the reference:
-- -2 rejected by the node, -1 sent to node, 0 unknown/old (mined), 1 accepted, 2 missing inputs
-- after the retry limit.
CREATE TABLE txs (
    tx_internal_id BIGSERIAL PRIMARY KEY,
    txid BYTEA NOT NULL UNIQUE,
    payload BYTEA NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    callback_url VARCHAR(1024) NULL,
    callback_token VARCHAR(256) NULL,
    callback_encryption VARCHAR(1024) NULL,
    merkle_proof BOOLEAN NOT NULL DEFAULT FALSE,
    merkle_format VARCHAR(32) NULL,
    ds_check BOOLEAN NOT NULL DEFAULT FALSE,
    unconfirmed_ancestor BOOLEAN NOT NULL DEFAULT FALSE,
    tx_status SMALLINT NOT NULL,
    submitted_at TIMESTAMPTZ NULL,
    policy_quote_id BIGINT NULL REFERENCES policy_quotes (id),
    ok_to_mine BOOLEAN NOT NULL DEFAULT FALSE,
    set_policy_quote BOOLEAN NOT NULL DEFAULT FALSE,
    identity VARCHAR(256) NULL,
    identity_provider VARCHAR(256) NULL
);
CREATE INDEX txs_status ON txs (tx_status, submitted_at);

-- Inputs of double-spend-checked transactions (and unconfirmed ancestors).
CREATE TABLE tx_inputs (
    tx_internal_id BIGINT NOT NULL REFERENCES txs (tx_internal_id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    prev_txid BYTEA NOT NULL,
    prev_n BIGINT NOT NULL,
    PRIMARY KEY (tx_internal_id, n)
);
CREATE INDEX tx_inputs_prev ON tx_inputs (prev_txid, prev_n);
