//! Diesel table definitions of the `peer_channels` schema (kept by hand, matching the migration).

diesel::table! {
    channels (id) {
        id -> Int8,
        account_id -> Int8,
        external_id -> Varchar,
        public_read -> Bool,
        public_write -> Bool,
        locked -> Bool,
        sequenced -> Bool,
        min_age_days -> Nullable<Int4>,
        max_age_days -> Nullable<Int4>,
        auto_prune -> Bool,
        head_sequence -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    channel_tokens (id) {
        id -> Int8,
        channel_id -> Int8,
        token_sha256 -> Bytea,
        description -> Varchar,
        can_read -> Bool,
        can_write -> Bool,
        owned_by_account -> Bool,
        read_upto -> Int8,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    messages (channel_id, seq) {
        channel_id -> Int8,
        seq -> Int8,
        from_token -> Nullable<Int8>,
        received_at -> Timestamptz,
        content_type -> Varchar,
        payload -> Bytea,
    }
}

diesel::table! {
    message_marks (token_id, seq) {
        token_id -> Int8,
        channel_id -> Int8,
        seq -> Int8,
        is_read -> Nullable<Bool>,
        is_deleted -> Bool,
    }
}

diesel::joinable!(channel_tokens -> channels (channel_id));
diesel::allow_tables_to_appear_in_same_query!(channels, channel_tokens, messages, message_marks);
