//! The sweep of leftover test databases drops only this host's, and only those whose creating
//! process is gone: another host sharing the server keeps its live databases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use test_support::{TestDatabase, admin_database_url, host_tag};

/// A process id no process can have (above Linux's largest `pid_max`).
const DEAD_PID: u32 = 4_194_305;

async fn create(admin: &mut AsyncPgConnection, name: &str) {
    diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(admin).await.unwrap();
}

#[tokio::test]
async fn only_this_hosts_databases_of_dead_processes_are_swept() {
    let mut admin = AsyncPgConnection::establish(&admin_database_url()).await.unwrap();
    let unique = rand_suffix();
    let mine_dead = format!("test_bsvmapi_h{}_{DEAD_PID}_0_{unique}", host_tag());
    let other_host = if host_tag() == "00000000" { "11111111" } else { "00000000" };
    let theirs = format!("test_bsvmapi_h{other_host}_{DEAD_PID}_0_{unique}");
    // The older name format names no host: it is not this host's to sweep either.
    let unattributed = format!("test_bsvmapi_{DEAD_PID}_0_{unique}");
    for name in [&mine_dead, &theirs, &unattributed] {
        create(&mut admin, name).await;
    }

    // Creating a test database sweeps.
    let db = TestDatabase::create().await;
    assert!(db.name().starts_with(&format!("test_bsvmapi_h{}_{}_", host_tag(), std::process::id())));
    assert!(!TestDatabase::exists_on_server(&mine_dead).await, "this host's leftover is swept");
    assert!(TestDatabase::exists_on_server(&theirs).await, "another host's database is kept");
    assert!(TestDatabase::exists_on_server(&unattributed).await, "an unattributed database is kept");

    for name in [&theirs, &unattributed] {
        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

fn rand_suffix() -> u32 {
    rand::random::<u32>()
}
