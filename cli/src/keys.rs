//! `settle keys`: the relayer's keys on the HSM, their rotation in the relayer's key registry
//! ([`rotation`]), and the integrity of its signing log.
//!
//! The user PIN comes only from `SETTLE_HSM_PIN`, never from a flag: a flag would leave it in
//! shell history and in the process list. Nothing here prints it.

pub mod api;
pub mod rotation;

use std::{fmt::Write as _, num::NonZeroUsize, path::PathBuf, time::Duration};

use alloy::primitives::Address;
use clap::{Args, Subcommand};
use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error as CkError, RvError},
};
use settle_relayer::{
    audit::{self, AuditError, Break},
    hsm::{HsmOptions, HsmSigner},
    keys::{self, KeyError, KeyInfo},
    rpc::RpcError,
    service::RotationError,
};
use sqlx::{PgPool, migrate::MigrateError, postgres::PgPoolOptions};
use thiserror::Error;

use crate::dev::redact;

/// Environment variable holding the token's user PIN.
pub const PIN_ENV: &str = "SETTLE_HSM_PIN";

/// Environment variable naming the PKCS#11 module.
pub const MODULE_ENV: &str = "SETTLE_PKCS11_MODULE";

/// Environment variable holding the relayer database's URL.
pub const DATABASE_URL_ENV: &str = "SETTLE_DATABASE_URL";

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
    /// Make a key on the token the active key of a contract; the previous one starts retiring.
    Rotate(rotation::RotateArgs),
    /// Retire a retiring batch key once nothing it signed is in flight and the contract dropped it.
    Retire(rotation::RetireArgs),
    /// List a contract's keys in the relayer's key registry.
    Registry(rotation::ContractArgs),
    /// Issue or revoke API keys (bearer tokens with a role).
    Api(api::ApiKeyArgs),
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
        env = DATABASE_URL_ENV,
        hide_env_values = true,
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
    // Displayed, not chained as a source: `main` prints the source chain too, and the
    // message already holds it.
    #[error("{0}")]
    Key(KeyError),
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
    /// A signer was asked for with no sessions.
    #[error("a signer needs at least one session on the token; configure 1 or more sessions")]
    NoSessions,
    /// A flag's value is not an address.
    #[error("invalid {flag} {value:?}: {problem}")]
    BadAddress {
        /// The flag, e.g. `--contract`.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What is wrong with it.
        problem: AddressProblem,
    },
    /// The relayer's migrations could not be applied.
    #[error(
        "cannot apply the relayer's migrations: {0}; check that --database-url is the relayer's database"
    )]
    Migrate(MigrateError),
    /// The database has no key registry.
    #[error(
        "no key registry in the database at {0}; check that --database-url is the relayer's database"
    )]
    NoRegistry(String),
    /// The RPC endpoint could not be used.
    #[error("{0}; check --rpc")]
    Rpc(RpcError),
    /// The RPC endpoint serves another chain than the one named.
    #[error(
        "--rpc serves chain {served}, not --chain-id {expected}; point --rpc at the contract's chain"
    )]
    WrongChain {
        /// The chain id given with `--chain-id`.
        expected: u64,
        /// The chain id the endpoint reports.
        served: u64,
    },
    /// The key cannot be retired yet, or the registry refused.
    #[error("{0}")]
    Rotation(RotationError),
}

// By hand rather than `#[from]`, which would also make the error a source (see `Key`).
impl From<KeyError> for KeysError {
    fn from(err: KeyError) -> Self {
        Self::Key(err)
    }
}

impl From<RpcError> for KeysError {
    fn from(err: RpcError) -> Self {
        Self::Rpc(err)
    }
}

impl From<RotationError> for KeysError {
    fn from(err: RotationError) -> Self {
        Self::Rotation(err)
    }
}

/// Why a value is not an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AddressProblem {
    /// It does not start with `0x`.
    #[error("an address is 0x followed by 40 hex digits")]
    NoPrefix,
    /// Not 40 characters after `0x`.
    #[error("an address has 40 hex digits after 0x, not {0}")]
    Length(usize),
    /// A character after `0x` is not a hex digit.
    #[error("an address has only hex digits (0-9, a-f) after 0x")]
    NotHex,
    /// Mixed case that is not the EIP-55 checksum.
    #[error("the mixed-case address fails its EIP-55 checksum; check it for typos")]
    Checksum,
}

/// Parses the value of `flag` as an address: `0x` and 40 hex digits, which must carry the EIP-55
/// checksum when they mix upper and lower case (all lower or all upper case carry none).
pub fn parse_address(flag: &'static str, value: &str) -> Result<Address, KeysError> {
    let bad = |problem| KeysError::BadAddress {
        flag,
        value: value.to_owned(),
        problem,
    };
    let digits = value
        .strip_prefix("0x")
        .ok_or_else(|| bad(AddressProblem::NoPrefix))?;
    let count = digits.chars().count();
    if count != 40 {
        return Err(bad(AddressProblem::Length(count)));
    }
    let mut bytes = [0_u8; 20];
    alloy::hex::decode_to_slice(digits, &mut bytes).map_err(|_| bad(AddressProblem::NotHex))?;
    let address = Address::from(bytes);
    let mixed = digits.bytes().any(|b| b.is_ascii_lowercase())
        && digits.bytes().any(|b| b.is_ascii_uppercase());
    if mixed && address.to_checksum(None).get(2..) != Some(digits) {
        return Err(bad(AddressProblem::Checksum));
    }
    Ok(address)
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

    /// The loaded module, the token's label and the PIN, for code that talks PKCS#11 directly
    /// (the bench's bare-`cryptoki` baseline).
    pub(crate) fn raw(&self) -> (&Pkcs11, &str, &str) {
        (&self.pkcs11, &self.token, &self.pin)
    }

    /// The secp256k1 key pairs on the token.
    pub fn list(&self) -> Result<Vec<KeyInfo>, KeysError> {
        Ok(keys::list_keys(&self.pkcs11, &self.token, &self.pin)?)
    }

    /// A signer for the key pair labelled `label`, with `sessions` sessions on the token.
    pub fn signer(&self, label: &str, sessions: usize) -> Result<HsmSigner, KeysError> {
        let sessions = NonZeroUsize::new(sessions).ok_or(KeysError::NoSessions)?;
        Ok(HsmSigner::open_with(
            &self.pkcs11,
            &self.token,
            &self.pin,
            label,
            HsmOptions { sessions },
        )
        .map_err(KeyError::from)?)
    }

    /// The address of the key pair labelled `label`, read by opening it as a signer, so the
    /// private half is known to be there too.
    pub fn address_of(&self, label: &str) -> Result<Address, KeysError> {
        Ok(self.signer(label, 1)?.address())
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

/// A one-connection pool on `database_url`: the commands do one thing after another.
async fn connect(database_url: &str) -> Result<PgPool, KeysError> {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await
        .map_err(|e| KeysError::Postgres {
            url: redact(database_url),
            reason: e.to_string(),
        })
}

/// Verifies the signing log at `database_url`; the number of entries if the chain holds.
pub async fn audit_log(database_url: &str) -> Result<i64, KeysError> {
    let pool = connect(database_url).await?;
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
        KeysCommand::Api(args) => api::run(args).await?,
        KeysCommand::Audit(audit) => {
            let entries = audit_log(&audit.database_url).await?;
            println!("signing log intact: {entries} entries");
        }
        KeysCommand::Rotate(rotate) => {
            let rotation = rotation::rotate(&rotate, pin()).await?;
            print!("{}", rotation.render());
        }
        KeysCommand::Retire(retire) => {
            let retired = rotation::retire(&retire).await?;
            println!(
                "retired batch key {} of {} on chain {}",
                retired.address, retired.contract.address, retired.contract.chain_id
            );
        }
        KeysCommand::Registry(contract) => {
            let (contract, keys) = rotation::registry(&contract).await?;
            print!("{}", rotation::render_registry(&contract, &keys));
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
    fn addresses_are_parsed_strictly() {
        let checksummed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let expected: Address = checksummed.parse().expect("an address");
        for given in [
            checksummed.to_owned(),
            checksummed.to_lowercase(),
            format!("0x{}", checksummed[2..].to_uppercase()),
        ] {
            assert_eq!(parse_address("--contract", &given).expect(&given), expected);
        }
        let bad_checksum = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        for (given, message) in [
            (
                "0x123",
                "invalid --contract \"0x123\": an address has 40 hex digits after 0x, not 3",
            ),
            (
                &checksummed[2..],
                "invalid --contract \"5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\": \
                 an address is 0x followed by 40 hex digits",
            ),
            (
                "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaeg",
                "invalid --contract \"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaeg\": \
                 an address has only hex digits (0-9, a-f) after 0x",
            ),
            (
                bad_checksum,
                "invalid --contract \"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD\": \
                 the mixed-case address fails its EIP-55 checksum; check it for typos",
            ),
        ] {
            let err = parse_address("--contract", given).expect_err(given);
            assert_eq!(err.to_string(), message);
        }
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
