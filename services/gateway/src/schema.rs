//! Diesel table definitions of the `accounts` schema (see `migrations/`).

diesel::table! {
    accounts (account_id) {
        account_id -> Int8,
        public_key -> Bytea,
        disabled -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    master_tokens (token_id) {
        token_id -> Int8,
        account_id -> Int8,
        token_sha256 -> Bytea,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(master_tokens -> accounts (account_id));
diesel::allow_tables_to_appear_in_same_query!(accounts, master_tokens);

diesel::table! {
    used_signed_messages (digest) {
        digest -> Bytea,
        expires_at -> Timestamptz,
    }
}
