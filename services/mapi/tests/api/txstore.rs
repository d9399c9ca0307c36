//! The record of the nodes' answers, straight against the database.

use bsv_primitives::Txid;
use db_kit::{Db, DbSettings};
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use mapi::txstore::{self, NewTx};
use test_support::TestDatabase;

fn row(txid: &Txid) -> NewTx {
    NewTx {
        txid: txid.internal().to_vec(),
        payload: Some(vec![1, 2, 3]),
        callback_url: None,
        callback_token: None,
        callback_encryption: None,
        merkle_proof: false,
        merkle_format: None,
        ds_check: false,
        tx_status: txstore::STATUS_SENT_TO_NODE,
        policy_quote_id: None,
        ok_to_mine: true,
        set_policy_quote: false,
        identity: None,
        identity_provider: None,
    }
}

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    synchronous_commit: String,
}

#[tokio::test]
async fn answers_are_recorded_in_one_statement_without_leaking_the_commit_setting() {
    let database = TestDatabase::create().await;
    let mut settings = DbSettings::new(database.url(), mapi::SCHEMA);
    settings.max_connections = 1; // every call below uses the same session
    let db = Db::new(settings).unwrap();
    db.migrate(mapi::MIGRATIONS).await.unwrap();
    let ids: Vec<Txid> = (1..=3u8).map(|b| Txid::from_internal([b; 32])).collect();
    txstore::insert_sending(&db, &ids.iter().map(row).collect::<Vec<_>>()).await.unwrap();

    let now = time::OffsetDateTime::now_utc();
    let answers = |accepted, keep, remove| txstore::Answers { accepted, registered: &[], keep, remove };
    txstore::record_outcome(&db, &answers(&ids[..1], &ids[1..2], &[]), now).await.unwrap();
    txstore::record_outcome(&db, &answers(&[], &[], &ids[2..]), now).await.unwrap();
    let stored = txstore::existing(&db, &ids).await.unwrap();
    assert_eq!(stored[&ids[0]].tx_status, txstore::STATUS_ACCEPTED);
    assert_eq!(stored[&ids[1]].tx_status, txstore::STATUS_NODE_REJECTED, "kept for an authenticated caller");
    assert!(!stored.contains_key(&ids[2]), "removed for an anonymous caller");
    // A second answer never moves an accepted row back.
    txstore::record_outcome(&db, &answers(&[], &[], &ids[..1]), now).await.unwrap();
    assert_eq!(txstore::existing(&db, &ids[..1]).await.unwrap()[&ids[0]].tx_status, txstore::STATUS_ACCEPTED);

    // The relaxed commit applied to that statement only: the pooled session is back to normal.
    let mut conn = db.conn().await.unwrap();
    let s: Setting = diesel::sql_query("SELECT current_setting('synchronous_commit') AS synchronous_commit")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(s.synchronous_commit, "on");
}

#[tokio::test]
async fn a_row_accepted_and_registered_in_one_answer_keeps_both() {
    let database = TestDatabase::create().await;
    let db = Db::new(DbSettings::new(database.url(), mapi::SCHEMA)).unwrap();
    db.migrate(mapi::MIGRATIONS).await.unwrap();
    let ids: Vec<Txid> = (1..=3u8).map(|b| Txid::from_internal([b; 32])).collect();
    txstore::insert_sending(&db, &ids.iter().map(row).collect::<Vec<_>>()).await.unwrap();

    // One statement used to update each row twice (status, then registration): only one change
    // took effect. Accepted, kept as rejected and removed, all three registered.
    let answers =
        txstore::Answers { accepted: &ids[..1], registered: &ids, keep: &ids[1..2], remove: &ids[2..] };
    txstore::record_outcome(&db, &answers, time::OffsetDateTime::now_utc()).await.unwrap();
    let rows = test_support::query_json(
        database.url(),
        mapi::SCHEMA,
        "SELECT encode(txid, 'hex') AS txid, tx_status, registered_at IS NOT NULL AS registered, \
         submitted_at IS NOT NULL AS submitted FROM txs ORDER BY txid",
    )
    .await;
    assert_eq!(rows.len(), 2, "the removed row is gone: {rows:?}");
    assert_eq!(rows[0]["tx_status"], i64::from(txstore::STATUS_ACCEPTED));
    assert_eq!(rows[0]["registered"], true);
    assert_eq!(rows[0]["submitted"], true);
    assert_eq!(rows[1]["tx_status"], i64::from(txstore::STATUS_NODE_REJECTED));
    assert_eq!(rows[1]["registered"], true);
    assert_eq!(rows[1]["submitted"], false);
}
