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
        registered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    tx_blocks (tx_internal_id, block_hash) {
        tx_internal_id -> Int8,
        block_hash -> Bytea,
        block_height -> Int8,
        header -> Bytea,
        proof -> Json,
        on_active_chain -> Bool,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    chain_tip (id) {
        id -> Bool,
        block_hash -> Bytea,
        block_height -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tx_block_double_spends (tx_internal_id, block_hash, ds_txid) {
        tx_internal_id -> Int8,
        block_hash -> Bytea,
        block_height -> Int8,
        ds_txid -> Bytea,
        ds_tx_payload -> Nullable<Bytea>,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    tx_mempool_double_spend_attempts (tx_internal_id, ds_txid) {
        tx_internal_id -> Int8,
        ds_txid -> Bytea,
        ds_tx_payload -> Nullable<Bytea>,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    callbacks (id) {
        id -> Int8,
        tx_internal_id -> Int8,
        txid -> Bytea,
        reason -> Varchar,
        block_hash -> Nullable<Bytea>,
        ds_txid -> Nullable<Bytea>,
        url -> Varchar,
        token -> Nullable<Varchar>,
        encryption -> Nullable<Varchar>,
        payload -> Json,
        created_at -> Timestamptz,
        taken_at -> Nullable<Timestamptz>,
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
diesel::joinable!(tx_blocks -> txs (tx_internal_id));
diesel::joinable!(txs -> policy_quotes (policy_quote_id));
diesel::allow_tables_to_appear_in_same_query!(
    txs,
    tx_inputs,
    policy_quotes,
    nodes,
    tx_blocks,
    chain_tip,
    tx_block_double_spends,
    tx_mempool_double_spend_attempts,
    callbacks
);
