//! Each test gets its own database on the real server, migrations run into the service's schema,
//! and nothing is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use db_kit::{Db, DbError, DbSettings, embed_migrations};
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use diesel_migrations::EmbeddedMigrations;
use test_support::TestDatabase;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("tests/migrations");

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(db: &Db, sql: &str) -> i64 {
    let mut conn = db.conn().await.unwrap();
    diesel::sql_query(sql).get_result::<Count>(&mut conn).await.unwrap().n
}

/// One test's life: own database, migrate, write, read back only its own rows, drop.
async fn isolated_scenario(label: &str) {
    let test_db = TestDatabase::create().await;
    let name = test_db.name().to_owned();
    let db = Db::new(DbSettings::new(test_db.url(), "sample")).unwrap();
    assert_eq!(db.migrate(MIGRATIONS).await.unwrap(), 1);
    assert_eq!(db.migrate(MIGRATIONS).await.unwrap(), 0, "migrations are idempotent");

    let mut conn = db.conn().await.unwrap();
    for _ in 0..3 {
        diesel::sql_query("INSERT INTO items (label) VALUES ($1)")
            .bind::<Text, _>(label)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);
    // Unqualified names resolve in the service's schema, where the migration table lives too.
    assert_eq!(count(&db, "SELECT count(*) AS n FROM items").await, 3);
    assert_eq!(count(&db, "SELECT count(*) AS n FROM sample.__diesel_schema_migrations").await, 1);
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'").await,
        0,
        "nothing lands in public"
    );

    drop(db);
    assert!(TestDatabase::exists_on_server(&name).await);
    drop(test_db);
    assert!(!TestDatabase::exists_on_server(&name).await, "database {name} left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn first_test_gets_its_own_database() {
    isolated_scenario("first").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn second_test_gets_its_own_database() {
    isolated_scenario("second").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_scenarios_at_the_same_moment_do_not_see_each_other() {
    tokio::join!(isolated_scenario("left"), isolated_scenario("right"));
}

#[tokio::test]
async fn a_database_that_is_down_is_unavailable_not_a_hang() {
    let port = test_support::free_port();
    let mut settings = DbSettings::new(format!("postgres://postgres@127.0.0.1:{port}/x"), "sample");
    settings.acquire_timeout_ms = 500;
    let db = Db::new(settings).unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(db.ping().await, Err(DbError::Unavailable(_))));
    assert!(matches!(db.migrate(MIGRATIONS).await, Err(DbError::Unavailable(_))));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
