//! `settle keys`: the relayer's keys on the HSM, and the integrity of its signing log.
//!
//! The user PIN comes only from `SETTLE_HSM_PIN`, never from a flag: a flag would leave it in
//! shell history and in the process list. Nothing here prints it.

use std::{fmt::Write as _, path::PathBuf, time::Duration};

use alloy::primitives::Address;
use clap::{Args, Subcommand};
use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error as CkError, RvError},
};
use settle_relayer::{
    audit::{self, AuditError, Break},
    keys::{self, KeyError, KeyInfo},
};
use sqlx::postgres::PgPoolOptions;
use thiserror::Error;

use crate::dev::redact;

/// Environment variable holding the token's user PIN.
pub const PIN_ENV: &str = "SETTLE_HSM_PIN";

/// Environment variable naming the PKCS#11 module.
pub const MODULE_ENV: &str = "SETTLE_PKCS11_MODULE";

/// Where Debian's `softhsm2` package puts the module.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Options of `settle keys`.
#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The `settle keys` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// List the secp256k1 key pairs on a token (user PIN from SETTLE_HSM_PIN).
    List(TokenArgs),
    /// Generate a secp256k1 key pair on a token (user PIN from SETTLE_HSM_PIN).
    Create(CreateArgs),
    /// Verify the hash chain of the relayer's signing log.
    Audit(AuditArgs),
}

/// Which token, through which module.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Label of the PKCS#11 token.
    #[arg(long, value_name = "LABEL")]
    pub token: String,
    /// The PKCS#11 module (shared library).
    #[arg(long, env = MODULE_ENV, default_value = DEFAULT_MODULE)]
    pub module: PathBuf,
}

/// Options of `settle keys create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// The token.
    #[command(flatten)]
    pub token: TokenArgs,
    /// Label for the new key pair; must not exist on the token yet.
    #[arg(long, value_name = "KEY")]
    pub label: String,
}

/// Options of `settle keys audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Postgres connection URL of the relayer's database.
    #[arg(
        long,
        env = "SETTLE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
}

/// Why a `settle keys` command failed.
#[derive(Debug, Error)]
pub enum KeysError {
    /// No PIN in the environment.
    #[error("{PIN_ENV} is not set; export the token's user PIN")]
    PinNotSet,
    /// No file at the module path.
    #[error(
        "no PKCS#11 module at {0}; install softhsm2 (./scripts/setup), or pass --module or set {MODULE_ENV}"
    )]
    ModuleNotFound(PathBuf),
    /// The module did not load or initialise.
    #[error(
        "cannot load the PKCS#11 module {path}: {reason}; pass a PKCS#11 library with --module"
    )]
    ModuleLoad {
        /// The module path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The token refused or the key operation failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Postgres does not answer.
    #[error(
        "cannot reach Postgres at {url}: {reason}; check --database-url or SETTLE_DATABASE_URL"
    )]
    Postgres {
        /// The URL, without a password.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The log could not be read.
    #[error("cannot read the signing log: {0}; check that this is the relayer's migrated database")]
    Audit(AuditError),
    /// The hash chain breaks.
    #[error("signing log broken: {0}; compare it with a backup before the relayer signs again")]
    LogBroken(Break),
}

/// A token to work on: the loaded module, the token label and the PIN. Validated on creation.
pub struct Hsm {
    pkcs11: Pkcs11,
    token: String,
    pin: String,
}

impl std::fmt::Debug for Hsm {
    // The PIN stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm").field("token", &self.token).finish()
    }
}

impl Hsm {
    /// Checks the PIN (from [`PIN_ENV`]) first, then loads and initialises the module.
    pub fn open(args: &TokenArgs, pin: Option<String>) -> Result<Self, KeysError> {
        let pin = pin
            .filter(|pin| !pin.is_empty())
            .ok_or(KeysError::PinNotSet)?;
        if !args.module.is_file() {
            return Err(KeysError::ModuleNotFound(args.module.clone()));
        }
        let load = |e: CkError| KeysError::ModuleLoad {
            path: args.module.clone(),
            reason: e.to_string(),
        };
        let pkcs11 = Pkcs11::new(&args.module).map_err(load)?;
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(load(e)),
        }
        Ok(Self {
            pkcs11,
            token: args.token.clone(),
            pin,
        })
    }

    /// The secp256k1 key pairs on the token.
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeysError> {
        Ok(keys::list_keys(&self.pkcs11, &self.token, &self.pin)?)
    }

    /// Generates a key pair labelled `label`; returns its address.
    pub fn create(&self, label: &str) -> Result<Address, KeysError> {
        Ok(keys::generate_key(
            &self.pkcs11,
            &self.token,
            &self.pin,
            label,
        )?)
    }
}

/// The key table `settle keys list` prints.
pub fn render_list(token: &str, keys: &[KeyInfo]) -> String {
    if keys.is_empty() {
        return format!("no secp256k1 key pairs on token {token:?}\n");
    }
    let width = keys
        .iter()
        .map(|k| k.label.chars().count())
        .chain(["LABEL".len()])
        .max()
        .unwrap_or_default();
    let id_width = keys
        .iter()
        .map(|k| k.id.len())
        .chain(["ID".len()])
        .max()
        .unwrap_or_default();
    let mut out = format!("{:<width$}  {:<id_width$}  ADDRESS\n", "LABEL", "ID");
    for key in keys {
        let _ = writeln!(
            out,
            "{:<width$}  {:<id_width$}  {}",
            key.label, key.id, key.address
        );
    }
    out
}

/// Verifies the signing log at `database_url`; the number of entries if the chain holds.
pub async fn audit_log(database_url: &str) -> Result<i64, KeysError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await
        .map_err(|e| KeysError::Postgres {
            url: redact(database_url),
            reason: e.to_string(),
        })?;
    let verdict = audit::verify(&pool).await.map_err(KeysError::Audit);
    pool.close().await;
    verdict?.map_err(KeysError::LogBroken)
}

/// Runs `settle keys`.
pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    // The only place the PIN is read.
    let pin = || std::env::var(PIN_ENV).ok();
    match args.command {
        KeysCommand::List(token) => {
            let hsm = Hsm::open(&token, pin())?;
            print!("{}", render_list(&token.token, &hsm.list()?));
        }
        KeysCommand::Create(create) => {
            let hsm = Hsm::open(&create.token, pin())?;
            let address = hsm.create(&create.label)?;
            println!(
                "created key {:?} on token {:?}: {address}",
                create.label, create.token.token
            );
        }
        KeysCommand::Audit(audit) => {
            let entries = audit_log(&audit.database_url).await?;
            println!("signing log intact: {entries} entries");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_pin_names_the_variable() {
        let args = TokenArgs {
            token: "t".into(),
            module: PathBuf::from("/nonexistent/module.so"),
        };
        for pin in [None, Some(String::new())] {
            let err = Hsm::open(&args, pin).expect_err("no pin");
            assert_eq!(
                err.to_string(),
                "SETTLE_HSM_PIN is not set; export the token's user PIN"
            );
        }
        let err = Hsm::open(&args, Some("1234".into())).expect_err("no module");
        assert_eq!(
            err.to_string(),
            "no PKCS#11 module at /nonexistent/module.so; install softhsm2 (./scripts/setup), \
             or pass --module or set SETTLE_PKCS11_MODULE"
        );
    }

    #[test]
    fn the_list_is_a_table() {
        let keys = [
            KeyInfo {
                label: "a".into(),
                id: "0011".into(),
                address: Address::repeat_byte(0x11),
            },
            KeyInfo {
                label: "longer-label".into(),
                id: "22".into(),
                address: Address::repeat_byte(0x22),
            },
        ];
        assert_eq!(
            render_list("tok", &keys),
            format!(
                "LABEL         ID    ADDRESS\n\
                 a             0011  {}\n\
                 longer-label  22    {}\n",
                Address::repeat_byte(0x11),
                Address::repeat_byte(0x22)
            )
        );
        assert_eq!(
            render_list("tok", &[]),
            "no secp256k1 key pairs on token \"tok\"\n"
        );
    }
}
