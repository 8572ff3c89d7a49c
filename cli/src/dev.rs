//! `settle dev`: the local stack on one machine.
//!
//! [`DevStack`] starts anvil on a loopback port and checks that Postgres
//! answers at the configured URL; [`crate::demo`] builds the whole system on
//! top of it.

use std::{path::PathBuf, time::Duration};

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    providers::{Provider, ProviderBuilder},
};
use clap::Args;
use sqlx::{Connection, PgConnection};
use thiserror::Error;

/// Options of `settle dev` (each also read from its `SETTLE_` environment variable).
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Postgres connection URL.
    #[arg(
        long,
        env = "SETTLE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// Loopback port for anvil's JSON-RPC (0 picks a free one).
    #[arg(long, env = "SETTLE_ANVIL_PORT", default_value_t = 8545)]
    pub anvil_port: u16,
    /// The anvil binary (default: the one scripts/setup installs).
    #[arg(long, env = "SETTLE_ANVIL")]
    pub anvil: Option<PathBuf>,
    /// Demo payments to submit through the API once the stack runs (0: none).
    #[arg(long, default_value_t = 1000)]
    pub demo: u64,
    /// Stop after the demo; exit 0 only if every payment settled and reconciliation is clean.
    #[arg(long)]
    pub exit: bool,
    /// Loopback port of the REST API (0 picks a free one).
    #[arg(long, env = "SETTLE_API_PORT", default_value_t = 8080)]
    pub api_port: u16,
    /// The database made afresh on the Postgres server at every start.
    #[arg(long, env = "SETTLE_DEV_DATABASE", default_value = "settle_dev")]
    pub dev_database: String,
    /// The SoftHSM2 token holding the dev keys (made by scripts/setup).
    #[arg(long, env = "SETTLE_DEV_TOKEN", default_value = "settle-dev")]
    pub token: String,
    /// Where the written settle.toml and deployment manifest go.
    #[arg(long, env = "SETTLE_DEV_DIR", default_value = ".settle/dev")]
    pub dir: PathBuf,
}

/// Why the local stack could not start.
#[derive(Debug, Error)]
pub enum DevError {
    /// No anvil binary where expected.
    #[error("anvil not found at {0}; run ./scripts/setup or pass --anvil PATH")]
    AnvilMissing(PathBuf),
    /// anvil did not start.
    #[error("anvil did not start on port {port}: {reason}; free the port or pass --anvil-port 0")]
    AnvilStart {
        /// The port asked for.
        port: u16,
        /// What went wrong.
        reason: String,
    },
    /// anvil started but does not answer.
    #[error("anvil at {endpoint} does not answer: {reason}")]
    AnvilRpc {
        /// Its endpoint.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// Postgres does not answer.
    #[error(
        "cannot reach Postgres at {url}: {reason}; run ./scripts/setup or set SETTLE_DATABASE_URL"
    )]
    Postgres {
        /// The URL, without a password.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// The running local stack. Dropping it stops anvil.
#[derive(Debug)]
pub struct DevStack {
    anvil: AnvilInstance,
    database_url: String,
    chain_id: u64,
}

impl DevStack {
    /// Starts anvil and checks Postgres.
    pub async fn start(args: &DevArgs) -> Result<Self, DevError> {
        let path = args.anvil.clone().unwrap_or_else(default_anvil_path);
        if !path.is_file() {
            return Err(DevError::AnvilMissing(path));
        }
        let anvil = Anvil::at(&path)
            .host("127.0.0.1")
            .port(args.anvil_port)
            .timeout(30_000)
            .try_spawn()
            .map_err(|e| DevError::AnvilStart {
                port: args.anvil_port,
                reason: e.to_string(),
            })?;
        let endpoint = anvil.endpoint();
        let rpc = |e: &dyn std::fmt::Display| DevError::AnvilRpc {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        };
        let url = endpoint.parse().map_err(|e| rpc(&e))?;
        let chain_id = ProviderBuilder::new()
            .connect_http(url)
            .get_chain_id()
            .await
            .map_err(|e| rpc(&e))?;

        let redacted = redact(&args.database_url);
        let pg = |e: &dyn std::fmt::Display| DevError::Postgres {
            url: redacted.clone(),
            reason: e.to_string(),
        };
        let mut conn = tokio::time::timeout(
            Duration::from_secs(10),
            PgConnection::connect(&args.database_url),
        )
        .await
        .map_err(|e| pg(&e))?
        .map_err(|e| pg(&e))?;
        sqlx::query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(|e| pg(&e))?;
        conn.close().await.map_err(|e| pg(&e))?;
        Ok(Self {
            anvil,
            database_url: redacted,
            chain_id,
        })
    }

    /// anvil's JSON-RPC endpoint.
    pub fn rpc_endpoint(&self) -> String {
        self.anvil.endpoint()
    }

    /// The chain id anvil reports.
    pub const fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The Postgres URL, without its password.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// anvil's funded development accounts.
    pub fn signers(&self) -> Vec<alloy::signers::local::PrivateKeySigner> {
        self.anvil
            .keys()
            .iter()
            .map(|k| alloy::signers::local::PrivateKeySigner::from(k.clone()))
            .collect()
    }
}

/// `node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil` under the workspace, as installed by scripts/setup.
fn default_anvil_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

/// The URL with any password replaced, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Runs the whole system with its demo (see [`crate::demo`]).
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    crate::demo::run(args).await
}

/// Resolves on Ctrl-C or SIGTERM (on Ctrl-C alone if SIGTERM cannot be watched).
pub(crate) async fn shutdown() {
    if let Err(e) = shutdown_signal().await {
        tracing::warn!(error = %e, "cannot watch SIGTERM; stop with Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> DevArgs {
        DevArgs {
            database_url: settle_testkit::postgres::admin_url(),
            anvil_port: 0,
            anvil: Some(settle_testkit::anvil::anvil_path().expect("anvil installed")),
            demo: 0,
            exit: true,
            api_port: 0,
            dev_database: "settle_dev_unit".to_owned(),
            token: "settle-dev".to_owned(),
            dir: PathBuf::from("target/settle-dev-unit"),
        }
    }

    #[tokio::test]
    async fn starts_anvil_and_checks_postgres_then_stops() {
        let stack = DevStack::start(&args()).await.expect("stack starts");
        assert_eq!(stack.chain_id(), 31337);
        let endpoint = stack.rpc_endpoint();
        drop(stack);
        let url = endpoint.parse().expect("url");
        let after = ProviderBuilder::new()
            .connect_http(url)
            .get_chain_id()
            .await;
        assert!(
            after.is_err(),
            "anvil still answers after the stack was dropped"
        );
    }

    #[tokio::test]
    async fn unreachable_postgres_names_the_fix() {
        let mut a = args();
        a.database_url = "postgres://settle:secret@127.0.0.1:1/none".into();
        let err = DevStack::start(&a).await.expect_err("must fail");
        let message = err.to_string();
        assert!(matches!(err, DevError::Postgres { .. }), "{message}");
        assert!(
            message.contains("postgres://settle:***@127.0.0.1:1/none"),
            "{message}"
        );
        assert!(message.contains("./scripts/setup"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[tokio::test]
    async fn missing_anvil_names_the_fix() {
        let mut a = args();
        a.anvil = Some(PathBuf::from("/nonexistent/anvil"));
        let err = DevStack::start(&a).await.expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "anvil not found at /nonexistent/anvil; run ./scripts/setup or pass --anvil PATH"
        );
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("postgres://u:p@h:5/d"), "postgres://u:***@h:5/d");
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact("postgres://h/d"), "postgres://h/d");
    }
}
