-- Open account websockets, on every replica: the indexer asks which accounts have one (output-spend
-- notifications need it). A replica refreshes its rows at each heartbeat; a row past expires_at
-- belongs to a socket whose replica died.
CREATE TABLE account_sockets (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX account_sockets_by_account ON account_sockets (account_id, expires_at);
