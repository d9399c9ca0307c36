//! The mempool checker against a real node that loses its mempool.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{BitcoindNode, NodeOptions};

use crate::helpers::{As, coins, spawn_app_with, spend};

async fn mempool(node: &BitcoindNode) -> Vec<String> {
    serde_json::from_value(node.rpc("getrawmempool", json!([])).await).unwrap()
}

#[tokio::test]
async fn a_node_restarted_with_an_empty_mempool_gets_every_accepted_tx_back() {
    // The wallet node makes the transactions; the node mapi uses has no wallet (so nothing but
    // mapi can put them back) and does not persist its mempool.
    let wallet = BitcoindNode::start().await;
    wallet.generate(10).await;
    let mut target = BitcoindNode::start_with(NodeOptions {
        fund_wallet: false,
        persist_mempool: false,
        extra_args: vec!["-disablewallet=1".into()],
        ..NodeOptions::default()
    })
    .await;
    target.connect_to(&wallet).await;
    let height = wallet.rpc("getblockcount", json!([])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while target.rpc("getblockcount", json!([])).await != height {
        assert!(Instant::now() < deadline, "the target node did not sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let interval = 2;
    let app = spawn_app_with(&[
        ("MEMPOOL_CHECKER_INTERVAL_SEC", "2"),
        ("MEMPOOL_CHECKER_UNSUCCESSFUL_INTERVAL_SEC", "1"),
    ])
    .await;
    assert_eq!(app.add_node(&target).await.status(), 201);
    let coins = coins(&wallet).await;
    let mut accepted = Vec::new();
    for coin in &coins[..3] {
        let hex = spend(&wallet, coin, 1000, 0).await;
        let resp = app.post("/mapi/tx", As::Anonymous, &json!({"rawtx": hex})).await;
        let env: bsv_primitives::JsonEnvelope = resp.json().await.unwrap();
        let p: Value = serde_json::from_str(&env.payload).unwrap();
        assert_eq!(p["returnResult"], "success", "{p}");
        accepted.push(p["txid"].as_str().unwrap().to_owned());
    }
    let before = mempool(&target).await;
    assert!(accepted.iter().all(|t| before.contains(t)));

    target.restart().await;
    assert!(mempool(&target).await.is_empty(), "the restart emptied the mempool");
    let restarted = Instant::now();
    loop {
        let now = mempool(&target).await;
        if accepted.iter().all(|t| now.contains(t)) {
            break;
        }
        // Two checker intervals, plus slack for a loaded machine.
        assert!(
            restarted.elapsed() < Duration::from_secs(2 * interval + 10),
            "still missing after {:?}: {now:?}",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // None was lost: mapi still reports each one.
    for txid in &accepted {
        let resp = app.get(&format!("/mapi/tx/{txid}"), As::Anonymous).await;
        let env: bsv_primitives::JsonEnvelope = resp.json().await.unwrap();
        let p: Value = serde_json::from_str(&env.payload).unwrap();
        assert_eq!(p["returnResult"], "success", "{p}");
    }
}

/// Status of a stored row, read straight from the database.
async fn stored_status(
    conn: &mut diesel_async::AsyncPgConnection,
    txid: &bsv_primitives::Txid,
) -> Option<i16> {
    use diesel::sql_types::{Bytea, SmallInt};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = SmallInt)]
        tx_status: i16,
    }
    diesel::sql_query("SELECT tx_status FROM mapi.txs WHERE txid = $1")
        .bind::<Bytea, _>(txid.internal().to_vec())
        .get_result::<Row>(conn)
        .await
        .ok()
        .map(|r| r.tx_status)
}

/// Stores `hex` as mAPI does before sending it, `age` ago.
async fn store_sending(
    conn: &mut diesel_async::AsyncPgConnection,
    hex: &str,
    age: &str,
) -> bsv_primitives::Txid {
    store(conn, hex, -1, age).await
}

/// Stores `hex` with `status`, received and submitted `age` ago.
async fn store(
    conn: &mut diesel_async::AsyncPgConnection,
    hex: &str,
    status: i16,
    age: &str,
) -> bsv_primitives::Txid {
    use diesel::sql_types::{Bytea, SmallInt, Text};
    use diesel_async::RunQueryDsl;
    let raw = hex::decode(hex).unwrap();
    let txid = bsv_primitives::Transaction::parse(&raw).unwrap().txid();
    diesel::sql_query(
        "INSERT INTO mapi.txs (txid, payload, tx_status, ok_to_mine, received_at, submitted_at) \
         VALUES ($1, $2, $3, true, now() - $4::interval, now() - $4::interval)",
    )
    .bind::<Bytea, _>(txid.internal().to_vec())
    .bind::<Bytea, _>(raw)
    .bind::<SmallInt, _>(status)
    .bind::<Text, _>(age)
    .execute(conn)
    .await
    .unwrap();
    txid
}

#[tokio::test]
async fn rows_left_sent_to_node_are_adopted_and_get_the_nodes_answer() {
    use diesel_async::AsyncConnection;
    let node = BitcoindNode::start().await;
    node.generate(10).await;
    let app = spawn_app_with(&[
        ("MEMPOOL_CHECKER_INTERVAL_SEC", "1"),
        ("MEMPOOL_CHECKER_UNSUCCESSFUL_INTERVAL_SEC", "1"),
    ])
    .await;
    assert_eq!(app.add_node(&node).await.status(), 201);
    let mut conn = diesel_async::AsyncPgConnection::establish(app._db.url()).await.unwrap();
    let coins = coins(&node).await;

    // mAPI stopped after storing these and before recording the answer (or that record was lost).
    let lost = store_sending(&mut conn, &spend(&node, &coins[0], 1000, 0).await, "1 hour").await;
    let in_mempool_hex = spend(&node, &coins[1], 1000, 0).await;
    node.rpc("sendrawtransaction", json!([in_mempool_hex])).await;
    let in_mempool = store_sending(&mut conn, &in_mempool_hex, "1 hour").await;
    let conflicting_hex = spend(&node, &coins[2], 1000, 0).await;
    node.rpc("sendrawtransaction", json!([spend(&node, &coins[2], 2000, 0).await])).await;
    let refused = store_sending(&mut conn, &conflicting_hex, "1 hour").await;
    // A submission in flight right now: not the checker's business yet.
    let in_flight = store_sending(&mut conn, &spend(&node, &coins[3], 1000, 0).await, "0 seconds").await;

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let statuses = (
            stored_status(&mut conn, &lost).await,
            stored_status(&mut conn, &in_mempool).await,
            stored_status(&mut conn, &refused).await,
        );
        if statuses == (Some(1), Some(1), Some(-2)) {
            break;
        }
        assert!(Instant::now() < deadline, "statuses after 15 s: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let now = mempool(&node).await;
    assert!(now.contains(&lost.to_string()), "the adopted tx was sent again");
    assert!(!now.contains(&in_flight.to_string()));
    assert_eq!(stored_status(&mut conn, &in_flight).await, Some(-1));
}

#[tokio::test]
async fn one_nodes_refusal_never_overwrites_another_nodes_accept() {
    use diesel_async::AsyncConnection;
    // Two nodes that do not know each other: the wallet's transactions are in its own mempool,
    // and the other node can only refuse them (it has never seen their inputs).
    let wallet = BitcoindNode::start().await;
    wallet.generate(5).await;
    let stranger = BitcoindNode::start().await;
    let app = spawn_app_with(&[
        ("MEMPOOL_CHECKER_INTERVAL_SEC", "1"),
        ("MEMPOOL_CHECKER_UNSUCCESSFUL_INTERVAL_SEC", "1"),
        ("MEMPOOL_CHECKER_MISSING_INPUTS_RETRIES", "1"),
    ])
    .await;
    assert_eq!(app.add_node(&wallet).await.status(), 201);
    assert_eq!(app.add_node(&stranger).await.status(), 201);
    let mut conn = diesel_async::AsyncPgConnection::establish(app._db.url()).await.unwrap();
    let coins = coins(&wallet).await;
    let adopted_hex = spend(&wallet, &coins[0], 1000, 0).await;
    wallet.rpc("sendrawtransaction", json!([adopted_hex])).await;
    let adopted = store_sending(&mut conn, &adopted_hex, "1 hour").await;
    let accepted_hex = spend(&wallet, &coins[1], 1000, 0).await;
    wallet.rpc("sendrawtransaction", json!([accepted_hex])).await;
    let accepted = store(&mut conn, &accepted_hex, 1, "1 hour").await;

    // Wait until the stranger was asked in at least three rounds (or a row was overwritten).
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.metric("merchantapi_mempoolchecker_tx_missing_counter").await < 5.0 {
        let overwritten = stored_status(&mut conn, &adopted).await == Some(-2)
            || stored_status(&mut conn, &accepted).await == Some(2);
        if overwritten {
            break;
        }
        assert!(Instant::now() < deadline, "the checker did not run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The wallet node has both: accepted, whatever the stranger said (a refused adopted row
    // would be -2, an accepted row given up for missing inputs 2).
    assert_eq!(stored_status(&mut conn, &adopted).await, Some(1));
    assert_eq!(stored_status(&mut conn, &accepted).await, Some(1));
}

#[tokio::test]
async fn a_checker_that_loses_its_lock_stops_and_another_replica_takes_over() {
    use diesel::sql_types::Integer;
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let settings =
        [("MEMPOOL_CHECKER_INTERVAL_SEC", "1"), ("MEMPOOL_CHECKER_UNSUCCESSFUL_INTERVAL_SEC", "1")];
    let first = spawn_app_with(&settings).await;
    let second = crate::helpers::spawn_replica(Some(first._db.url()), &settings).await;
    const ACTIVE: &str = "mapi_mempool_checker_active";
    let deadline = Instant::now() + Duration::from_secs(20);
    let (holder, standby) = loop {
        match (first.metric(ACTIVE).await, second.metric(ACTIVE).await) {
            (1.0, 0.0) => break (&first, &second),
            (0.0, 1.0) => break (&second, &first),
            other => assert!(Instant::now() < deadline, "no single checker: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Cut the holder's lock connection, as a network fault or a database restart would.
    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = Integer)]
        pid: i32,
    }
    let mut admin = diesel_async::AsyncPgConnection::establish(first._db.url()).await.unwrap();
    let lock_holders = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let pids: Vec<Pid> = diesel::sql_query(lock_holders).load(&mut admin).await.unwrap();
    assert_eq!(pids.len(), 1);
    diesel::sql_query(format!("SELECT pg_terminate_backend({})", pids[0].pid))
        .execute(&mut admin)
        .await
        .unwrap();

    // The other replica takes over, and the first one stops (one checker at a time).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = (holder.metric(ACTIVE).await, standby.metric(ACTIVE).await);
        if now == (0.0, 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "after the cut: {now:?} (holder, standby)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((holder.metric(ACTIVE).await, standby.metric(ACTIVE).await), (0.0, 1.0), "it stays that way");
    let pids: Vec<Pid> = diesel::sql_query(lock_holders).load(&mut admin).await.unwrap();
    assert_eq!(pids.len(), 1, "one lock, one checker");
}
