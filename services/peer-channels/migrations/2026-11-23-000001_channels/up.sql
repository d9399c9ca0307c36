-- Peer channels. Read and delete state is per token, but not a row per token per message: a
-- token has a read watermark (`read_upto`) and `message_marks` holds only the exceptions a token
-- asked for (a message marked read or unread out of order, or deleted for that token).
CREATE TABLE channels (
    id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL,
    external_id VARCHAR(128) NOT NULL UNIQUE,
    public_read BOOLEAN NOT NULL,
    public_write BOOLEAN NOT NULL,
    locked BOOLEAN NOT NULL DEFAULT FALSE,
    sequenced BOOLEAN NOT NULL,
    min_age_days INTEGER NULL,
    max_age_days INTEGER NULL,
    auto_prune BOOLEAN NOT NULL,
    -- The last sequence number handed out; the row lock on it keeps sequences gapless.
    head_sequence BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX channels_account ON channels (account_id, id);

CREATE TABLE channel_tokens (
    id BIGSERIAL PRIMARY KEY,
    channel_id BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    -- SHA-256 of the token; the token itself is shown once, to the caller it is issued to.
    token_sha256 BYTEA NOT NULL UNIQUE,
    description VARCHAR(1024) NOT NULL,
    can_read BOOLEAN NOT NULL,
    can_write BOOLEAN NOT NULL,
    owned_by_account BOOLEAN NOT NULL,
    read_upto BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ NULL
);
CREATE INDEX channel_tokens_channel ON channel_tokens (channel_id, id);

CREATE TABLE messages (
    channel_id BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    from_token BIGINT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    content_type VARCHAR(64) NOT NULL,
    payload BYTEA NOT NULL,
    PRIMARY KEY (channel_id, seq)
);
CREATE INDEX messages_received ON messages (received_at);

CREATE TABLE message_marks (
    token_id BIGINT NOT NULL REFERENCES channel_tokens (id) ON DELETE CASCADE,
    channel_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    -- NULL: what the watermark says.
    is_read BOOLEAN NULL,
    is_deleted BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (token_id, seq),
    FOREIGN KEY (channel_id, seq) REFERENCES messages (channel_id, seq) ON DELETE CASCADE
);
CREATE INDEX message_marks_message ON message_marks (channel_id, seq);
