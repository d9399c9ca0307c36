//! A fresh PostgreSQL database per test on the real server, dropped when the test ends.
//!
//! The server comes from `DATABASE_URL` (any database on it; the admin work happens in `postgres`)
//! or defaults to `postgres://postgres@127.0.0.1:5432/postgres`. Names carry a tag of the creating
//! host and the creating process id, so a later run sweeps what a killed run left behind without
//! touching databases of test processes that are still alive (nextest runs each test in its own
//! process), nor any database of another host sharing the server (its processes are not in this
//! host's `/proc`).

use std::sync::atomic::{AtomicU32, Ordering};

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

const PREFIX: &str = "test_bsvmapi_";

/// The URL of the server's `postgres` database, from `DATABASE_URL` or the local default.
pub fn admin_database_url() -> String {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    with_database(&base, "postgres")
}

/// Replaces the database name in a `postgres://` URL, keeping any query string.
fn with_database(url: &str, db: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let scheme_end = main.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match main[scheme_end..].find('/') {
        Some(slash) => &main[..scheme_end + slash],
        None => main,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

#[derive(diesel::QueryableByName)]
struct DbName {
    #[diesel(sql_type = Text)]
    datname: String,
}

impl TestDatabase {
    /// Creates an empty database with a unique name.
    pub async fn create() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin_url = admin_database_url();
        let mut admin = AsyncPgConnection::establish(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "cannot connect to PostgreSQL at {admin_url}: {e}. Start it (scripts/lib/ensure-postgres.sh) or set DATABASE_URL"
            )
        });
        sweep_leftovers(&mut admin).await;
        let name = format!(
            "{}{}_{}_{}",
            own_prefix(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let url = with_database(&admin_url, &name);
        Self { name, url, admin_url }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for the service under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True while the database exists on the server (checked over a new admin connection).
    pub async fn exists_on_server(name: &str) -> bool {
        let mut admin = AsyncPgConnection::establish(&admin_database_url()).await.unwrap();
        let rows: Vec<DbName> = diesel::sql_query("SELECT datname FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(name)
            .load(&mut admin)
            .await
            .unwrap();
        !rows.is_empty()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on; a plain thread with a
        // synchronous connection does the work and is joined, so the database is gone on return.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let joined = std::thread::spawn(move || drop_database_blocking(&admin_url, &name)).join();
        if let Ok(Err(e)) | Err(e) = joined.map_err(|_| "drop thread panicked".to_owned()) {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

fn drop_database_blocking(admin_url: &str, name: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut admin = AsyncPgConnection::establish(admin_url).await.map_err(|e| e.to_string())?;
        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// A short tag of this host (its name, hashed): test databases of different hosts on one server
/// never share a name prefix.
pub fn host_tag() -> String {
    use sha2::{Digest, Sha256};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    hex_prefix(&Sha256::digest(host.trim().as_bytes()))
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// `test_bsvmapi_h<host tag>_`: the prefix of this host's test databases.
fn own_prefix() -> String {
    format!("{PREFIX}h{}_", host_tag())
}

/// Drops this host's test databases whose creating process no longer exists.
async fn sweep_leftovers(admin: &mut AsyncPgConnection) {
    let prefix = own_prefix();
    let rows: Vec<DbName> =
        match diesel::sql_query("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind::<Text, _>(&prefix)
            .load(admin)
            .await
        {
            Ok(r) => r,
            Err(_) => return,
        };
    for row in rows {
        let pid = row.datname[prefix.len()..].split('_').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", row.datname))
                .execute(admin)
                .await;
        }
    }
}

/// Runs `sql` (statements separated by `;`) on the database at `url` with `schema` first on the
/// search path: a bench filling a service's tables faster than its API would.
pub async fn execute_sql(url: &str, schema: &str, sql: &str) {
    use diesel_async::SimpleAsyncConnection;
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    conn.batch_execute(&format!("SET search_path TO {schema}; {sql}"))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The rows of `sql` on the database at `url` with `schema` first on the search path, as JSON
/// objects (a service's tables read directly by a test).
pub async fn query_json(url: &str, schema: &str, sql: &str) -> Vec<serde_json::Value> {
    #[derive(diesel::QueryableByName)]
    struct Rows {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        rows: Option<String>,
    }
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    diesel::sql_query(format!("SET search_path TO {schema}")).execute(&mut conn).await.expect("search_path");
    let r: Rows = diesel::sql_query(format!("SELECT json_agg(x)::text AS rows FROM ({sql}) x"))
        .get_result(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    r.rows.map(|t| serde_json::from_str(&t).expect("json")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_host_tag_is_eight_hex_digits() {
        let tag = super::host_tag();
        assert_eq!(tag.len(), 8);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(super::hex_prefix(&[0xab, 0x01, 0xff, 0x10, 0x99]), "ab01ff10");
    }

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(with_database("postgres://u@h:1/x", "y"), "postgres://u@h:1/y");
        assert_eq!(with_database("postgres://u@h:1", "y"), "postgres://u@h:1/y");
        assert_eq!(
            with_database("postgres://u@h/x?sslmode=disable", "y"),
            "postgres://u@h/y?sslmode=disable"
        );
    }
}
