-- Nodes mAPI submits to. The RPC password is needed in clear to call the node; it never leaves
-- the service (no API returns it).
CREATE TABLE nodes (
    node_id BIGSERIAL PRIMARY KEY,
    host VARCHAR(256) NOT NULL,
    port INTEGER NOT NULL CHECK (port > 0 AND port < 65536),
    username VARCHAR(256) NOT NULL,
    password VARCHAR(256) NOT NULL,
    remarks VARCHAR(1024) NULL,
    zmq_notifications_endpoint VARCHAR(256) NULL,
    node_status INTEGER NOT NULL DEFAULT 600,
    last_error VARCHAR(1024) NULL,
    last_error_at TIMESTAMPTZ NULL,
    UNIQUE (host, port)
);

-- Policy (fee) quotes. Fees are kept as the JSON array the API speaks; policies verbatim.
CREATE TABLE policy_quotes (
    id BIGSERIAL PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    valid_from TIMESTAMPTZ NOT NULL,
    identity VARCHAR(256) NULL,
    identity_provider VARCHAR(256) NULL,
    policies JSONB NULL,
    fees JSONB NOT NULL,
    CHECK (created_at <= valid_from),
    CHECK ((identity IS NULL) = (identity_provider IS NULL))
);
CREATE INDEX policy_quotes_identity ON policy_quotes (identity, identity_provider, valid_from);

-- The reference's initial data: an anonymous quote of 100 satoshis per 200 bytes.
INSERT INTO policy_quotes (created_at, valid_from, fees) VALUES (now(), now(),
 '[{"feeType":"standard","miningFee":{"satoshis":100,"bytes":200},"relayFee":{"satoshis":100,"bytes":200}},
   {"feeType":"data","miningFee":{"satoshis":100,"bytes":200},"relayFee":{"satoshis":100,"bytes":200}}]');
