//! A fresh PostgreSQL database per test, on the server named by `WEFT_TEST_DATABASE_URL`
//! (`postgres://postgres@127.0.0.1:5432/test`). Without the variable, tests that need one
//! print that they were skipped and pass. The database is dropped when the guard is (also
//! when the test panics), best-effort.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;
use weft_runtime::store::{PostgresStore, Store};

/// The variable tests read.
pub const VAR: &str = "WEFT_TEST_DATABASE_URL";

/// A database created for one test.
pub struct TestDb {
    /// The server's URL as given (its own database is used for `CREATE`/`DROP DATABASE`).
    pub admin_url: String,
    /// The new database's name.
    pub name: String,
    /// A URL to the new database.
    pub url: String,
}

/// `url` with its database replaced by `name` (query string kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let rest_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[rest_start..]
        .find('/')
        .map_or(base.len(), |i| rest_start + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "weft_test_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("{VAR} is set but PostgreSQL is unreachable: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

impl TestDb {
    /// Creates `weft_test_<random>`, or returns `None` (after saying so) when `WEFT_TEST_DATABASE_URL`
    /// is not set.
    pub async fn create() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var(VAR) else {
            // Once per test binary, and past the test harness's output capture (a plain
            // `println!` of a passing test is never shown).
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "PostgreSQL tests skipped: {VAR} is not set"
                );
            });
            return None;
        };
        let name = unique_name();
        let client = admin(&admin_url).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let url = with_database(&admin_url, &name);
        Some(TestDb {
            admin_url,
            name,
            url,
        })
    }

    /// Opens a store (a node) on the database.
    pub async fn store(&self, serving: bool) -> Arc<dyn Store> {
        Arc::new(self.open(serving).await)
    }

    /// Opens a [`PostgresStore`] on the database.
    pub async fn open(&self, serving: bool) -> PostgresStore {
        PostgresStore::connect(&self.url, serving).await.unwrap()
    }

    /// A plain connection to the database (for checks and fault injection).
    pub async fn client(&self) -> tokio_postgres::Client {
        admin(&self.url).await
    }

    /// Terminates every other connection to the database, as a failover or an operator
    /// would; returns how many.
    pub async fn terminate_connections(&self) -> u64 {
        let client = admin(&self.admin_url).await;
        let row = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&self.name],
            )
            .await
            .unwrap();
        u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Its own thread and runtime: this may run inside (or after) the test's runtime.
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok((client, connection)) = tokio_postgres::connect(&admin_url, NoTls).await
                else {
                    return;
                };
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), client.batch_execute(&sql)).await;
            });
        });
        let _ = dropper.join();
    }
}
