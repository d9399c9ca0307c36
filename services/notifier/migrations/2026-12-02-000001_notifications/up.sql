-- Callbacks to deliver, one row per request key (mapi: transaction, reason, block and double
-- spending transaction). A row is leased by the replica that delivers it (renewed while it holds
-- it; a replica that dies lets its leases run out and another, or its successor, takes them),
-- marked delivered after a 2xx, retried with backoff after a failure, and dead after the retry
-- count. Delivered rows stay a while so that a repeated request is recognised.
CREATE TABLE notifications (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    url TEXT NOT NULL,
    token TEXT NULL,
    encryption TEXT NULL,
    body TEXT NOT NULL,
    txid TEXT NULL,
    reason TEXT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts INT NOT NULL DEFAULT 0,
    error_count INT NOT NULL DEFAULT 0,
    last_error TEXT NULL,
    last_error_at TIMESTAMPTZ NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    leased_by BIGINT NULL,
    leased_until TIMESTAMPTZ NULL,
    delivered_at TIMESTAMPTZ NULL,
    dead_at TIMESTAMPTZ NULL
);
-- What the retry job looks at: neither delivered nor dead.
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
-- A replica renews its leases by owner.
CREATE INDEX notifications_leased ON notifications (leased_by) WHERE leased_by IS NOT NULL;
CREATE INDEX notifications_dead ON notifications (dead_at) WHERE dead_at IS NOT NULL;
CREATE INDEX notifications_delivered ON notifications (delivered_at) WHERE delivered_at IS NOT NULL;
