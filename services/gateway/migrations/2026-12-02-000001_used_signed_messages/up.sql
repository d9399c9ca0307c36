-- Signed sign-up and account messages already accepted: a message is accepted once. A row is kept
-- until the message's time window has passed (after that the message is refused as stale anyway).
-- The digest is SHA-256 over the key and the message, so the same message signed again by the same
-- key is the same message.
CREATE TABLE used_signed_messages (
    digest BYTEA PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX used_signed_messages_expiry ON used_signed_messages (expires_at);
