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
