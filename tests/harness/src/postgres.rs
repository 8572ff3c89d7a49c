//! A fresh, uniquely named Postgres database per test, dropped afterwards.

use std::str::FromStr;

use sqlx::{
    ConnectOptions, Connection, PgConnection,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
};
use uuid::Uuid;

use crate::{Error, Result};

/// Environment variable holding the admin URL (a role allowed to create databases).
pub const DATABASE_URL_ENV: &str = "SETTLE_TEST_DATABASE_URL";

/// Admin URL used when [`DATABASE_URL_ENV`] is unset: the local trust-auth server.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Prefix of every database this module creates; nothing else is ever dropped.
pub const DATABASE_PREFIX: &str = "settle_test_";

/// Connections per test pool; small, since many tests run at once against one server.
const POOL_SIZE: u32 = 5;

/// A database that exists for the lifetime of this value.
///
/// Prefer `db.cleanup().await`, which reports failures. Dropping without it
/// still removes the database (best effort, errors go to stderr): a helper
/// thread with its own runtime runs `DROP DATABASE ... WITH (FORCE)`, which
/// also ends the pool's connections server-side. The pool is not closed
/// gracefully in that path because its sockets belong to the caller's
/// runtime, which is blocked while `drop` runs.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    pool: PgPool,
    admin: PgConnectOptions,
    dropped: bool,
}

impl TestDb {
    /// Creates a database through the admin URL in [`DATABASE_URL_ENV`]
    /// (default [`DEFAULT_DATABASE_URL`]) and connects a pool to it.
    pub async fn create() -> Result<Self> {
        Self::create_at(&admin_url()).await
    }

    /// Like [`Self::create`], with an explicit admin URL.
    pub async fn create_at(admin_url: &str) -> Result<Self> {
        let admin = PgConnectOptions::from_str(admin_url).map_err(Error::InvalidDatabaseUrl)?;
        let name = format!("{DATABASE_PREFIX}{}", Uuid::new_v4().simple());

        let mut conn = admin_connect(&admin).await?;
        let created = sqlx::raw_sql(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut conn)
            .await;
        // Closing is a courtesy to the server; the outcome that matters is CREATE.
        let _ = conn.close().await;
        created.map_err(|source| Error::Postgres {
            database: name.clone(),
            source,
        })?;

        let options = admin.clone().database(&name);
        let pool = match PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => pool,
            Err(source) => {
                // Do not leak the database we just made.
                let _ = drop_database(&admin, &name).await;
                return Err(Error::Postgres {
                    database: name,
                    source,
                });
            }
        };

        Ok(Self {
            url: options.to_url_lossy().to_string(),
            name,
            pool,
            admin,
            dropped: false,
        })
    }

    /// The database name (`settle_test_<uuid>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection URL for this database, for code that takes a URL
    /// (e.g. a binary under test started as a child process).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pool connected to this database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool and drops the database, reporting any failure.
    pub async fn cleanup(mut self) -> Result<()> {
        self.pool.close().await;
        drop_database(&self.admin, &self.name).await?;
        self.dropped = true;
        Ok(())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let admin = self.admin.clone();
        let name = self.name.clone();
        // `drop` cannot await, and may run inside the caller's runtime, so
        // this runs on its own thread with its own runtime and is joined.
        let joined = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("settle-testkit: cannot drop test database {name}: {err}");
                    return;
                }
            };
            if let Err(err) = runtime.block_on(drop_database(&admin, &name)) {
                eprintln!("settle-testkit: cannot drop test database {name}: {err}");
            }
        })
        .join();
        if joined.is_err() {
            eprintln!(
                "settle-testkit: the thread dropping test database {} panicked",
                self.name
            );
        }
    }
}

/// The admin URL: [`DATABASE_URL_ENV`] if set, else [`DEFAULT_DATABASE_URL`].
pub fn admin_url() -> String {
    std::env::var(DATABASE_URL_ENV).unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// A connection to the admin database, e.g. to look at `pg_database`.
pub async fn admin_connection() -> Result<PgConnection> {
    let admin = PgConnectOptions::from_str(&admin_url()).map_err(Error::InvalidDatabaseUrl)?;
    admin_connect(&admin).await
}

/// Connects to the admin database, mapping failure to the error that names the fix.
async fn admin_connect(admin: &PgConnectOptions) -> Result<PgConnection> {
    PgConnection::connect_with(admin)
        .await
        .map_err(|source| Error::PostgresConnect {
            host: admin.get_host().to_owned(),
            port: admin.get_port(),
            source,
        })
}

async fn drop_database(admin: &PgConnectOptions, name: &str) -> Result<()> {
    let mut conn = admin_connect(admin).await?;
    // FORCE ends sessions still connected (leaked pools, child processes).
    let dropped = sqlx::raw_sql(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    dropped.map_err(|source| Error::Postgres {
        database: name.to_owned(),
        source,
    })?;
    Ok(())
}
