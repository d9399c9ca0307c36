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
    }
}
