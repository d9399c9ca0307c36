//! Diesel table definitions of the `mapi` schema (see `migrations/`).

diesel::table! {
    nodes (node_id) {
        node_id -> Int8,
        host -> Varchar,
        port -> Int4,
        username -> Varchar,
        password -> Varchar,
        remarks -> Nullable<Varchar>,
        zmq_notifications_endpoint -> Nullable<Varchar>,
        node_status -> Int4,
        last_error -> Nullable<Varchar>,
        last_error_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    policy_quotes (id) {
        id -> Int8,
        created_at -> Timestamptz,
        valid_from -> Timestamptz,
        identity -> Nullable<Varchar>,
        identity_provider -> Nullable<Varchar>,
        policies -> Nullable<Jsonb>,
        fees -> Jsonb,
    }
}

diesel::table! {
    txs (tx_internal_id) {
        tx_internal_id -> Int8,
        txid -> Bytea,
        payload -> Nullable<Bytea>,
        received_at -> Timestamptz,
        callback_url -> Nullable<Varchar>,
        callback_token -> Nullable<Varchar>,
        callback_encryption -> Nullable<Varchar>,
        merkle_proof -> Bool,
        merkle_format -> Nullable<Varchar>,
        ds_check -> Bool,
        unconfirmed_ancestor -> Bool,
        tx_status -> Int2,
        submitted_at -> Nullable<Timestamptz>,
        policy_quote_id -> Nullable<Int8>,
        ok_to_mine -> Bool,
        set_policy_quote -> Bool,
        identity -> Nullable<Varchar>,
        identity_provider -> Nullable<Varchar>,
    }
}

diesel::table! {
    tx_inputs (tx_internal_id, n) {
        tx_internal_id -> Int8,
        n -> Int4,
        prev_txid -> Bytea,
        prev_n -> Int8,
    }
}

diesel::joinable!(tx_inputs -> txs (tx_internal_id));
diesel::joinable!(txs -> policy_quotes (policy_quote_id));
diesel::allow_tables_to_appear_in_same_query!(txs, tx_inputs, policy_quotes, nodes);
