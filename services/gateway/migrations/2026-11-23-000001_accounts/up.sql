-- Accounts are keyed by the exact public key bytes a client signed up with (33 or 65 bytes), as
-- the ElectrumSV reference does: compressed and uncompressed forms are different accounts.
CREATE TABLE accounts (
    account_id BIGSERIAL PRIMARY KEY,
    public_key BYTEA NOT NULL UNIQUE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Master bearer tokens, stored only as SHA-256 digests (the tokens are 64 random bytes, so a
-- fast hash is enough: there is nothing to brute-force). A later sign-up adds a token and keeps
-- the earlier ones valid.
CREATE TABLE master_tokens (
    token_id BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
    token_sha256 BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ NULL
);
CREATE INDEX master_tokens_account ON master_tokens (account_id);
