//! Diesel table definitions of the `blocks` schema (see `migrations/`).

diesel::table! {
    headers (hash) {
        hash -> Bytea,
        height -> Int8,
        prev_hash -> Bytea,
        header -> Bytea,
        chain_work -> Bytea,
        tx_count -> Int8,
        on_best_chain -> Bool,
        seen_at -> Timestamptz,
        parse_wanted -> Bool,
        parsed_at -> Nullable<Timestamptz>,
        parse_errors -> Int4,
        parse_bytes -> Nullable<Int8>,
    }
}

diesel::table! {
    registered_txids (txid) {
        txid -> Bytea,
        registered_at -> Timestamptz,
        mined_height -> Nullable<Int8>,
    }
}

diesel::table! {
    registered_spends (prev_txid, prev_n, txid) {
        prev_txid -> Bytea,
        prev_n -> Int8,
        txid -> Bytea,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        payload -> Json,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
    }
}
