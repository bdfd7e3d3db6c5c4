//! Test databases: each test gets its own fresh, migrated database on each backend (a temp
//! SQLite file; a PostgreSQL database created for it and dropped after).

use std::future::Future;
use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};

use super::{Database, EncryptionKey};

/// Where the PostgreSQL tests create their databases. They fail (not skip) when it is
/// unreachable: a green run must mean both backends were tested.
pub(crate) fn postgres_url() -> String {
    std::env::var("SARA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Runs `test` against a fresh SQLite file, then deletes it; a panic in `test` is re-raised.
pub(crate) async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("a temp dir for the test database");
    let url = format!("sqlite://{}", dir.path().join("sara.db").display());
    // No key given: the store creates `sara.db.key` beside the file, as on a first start.
    let db = Database::connect(&url, None)
        .await
        .expect("open the SQLite file");
    db.migrate().await.expect("migrate SQLite");
    let outcome = tokio::spawn(test(db.clone())).await;
    db.close().await;
    drop(dir);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs `test` against a PostgreSQL database created for it, then drops the database; a
/// panic in `test` is re-raised after the clean-up.
pub(crate) async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin_options =
        PgConnectOptions::from_str(&postgres_url()).expect("SARA_TEST_POSTGRES_URL is a URL");
    let mut admin = PgConnection::connect_with(&admin_options)
        .await
        .expect("PostgreSQL must be reachable at SARA_TEST_POSTGRES_URL");
    let name = format!("sara_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(admin_options.clone().database(&name))
        .await
        .expect("connect to the test database");
    let db = Database::on_postgres_pool(pool, &EncryptionKey::generate());
    db.migrate().await.expect("migrate PostgreSQL");
    let outcome = tokio::spawn(test(db.clone())).await;
    db.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop the test database");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `on_both_backends!(name)` turns `async fn name(db: Database)` into two tests,
/// `name::sqlite` and `name::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::store::testing::on_sqlite(super::$name).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::store::testing::on_postgres(super::$name).await
                }
            }
        )+
    };
}

pub(crate) use on_both_backends;
