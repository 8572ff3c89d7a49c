//! The deployment configuration of one chain: `deploy/config/<name>.toml`.
//!
//! Parsing is strict: every key is known, typed and range-checked, and an
//! error is one line naming the file, the key (`governance.owners[1]`,
//! `token[0].daily_cap`) and the fix. The format is documented in
//! `deploy/README.md`.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use alloy::primitives::{Address, B256, keccak256};
use thiserror::Error;
use toml::{Table, Value};

/// Largest token `decimals` accepted: `10^38` still fits a `uint128`.
const MAX_DECIMALS: u8 = 38;

/// Why a deployment configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the deployment config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path}:{line}:{column}: not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Line of the error, from 1.
        line: usize,
        /// Column of the error, from 1.
        column: usize,
        /// What the TOML parser said.
        message: String,
    },
    /// A key is missing, unknown or has a bad value.
    #[error("{path}: {key}: {problem}")]
    Key {
        /// The file.
        path: PathBuf,
        /// The key, as a path such as `governance.owners[1]`.
        key: String,
        /// What is wrong and how to fix it.
        problem: Problem,
    },
}

/// What is wrong with one key of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    /// A required key is absent.
    #[error("missing; add {0}")]
    Missing(&'static str),
    /// The key is not part of the format.
    #[error("unknown key; the keys here are {0}")]
    Unknown(&'static str),
    /// The value has the wrong TOML type.
    #[error("must be {0}")]
    Type(&'static str),
    /// Not `0x` and 40 hex digits.
    #[error("must be an address: 0x followed by 40 hex digits")]
    NotAnAddress,
    /// A mixed-case address whose EIP-55 checksum fails.
    #[error("fails its EIP-55 checksum; check it for typos, or write it all in lower case")]
    Checksum,
    /// The zero address where an account is needed.
    #[error("must not be the zero address")]
    ZeroAddress,
    /// An address listed twice.
    #[error("lists {0} more than once; list each address once")]
    Duplicate(Address),
    /// A list that must not be empty is.
    #[error("must not be empty")]
    Empty,
    /// The threshold is not in 1..=owners.
    #[error("must be between 1 and the number of owners ({0})")]
    Threshold(usize),
    /// An integer outside its range.
    #[error("must be between {min} and {max}")]
    Range {
        /// Smallest value allowed.
        min: u64,
        /// Largest value allowed.
        max: u64,
    },
    /// A `0x`-prefixed salt that is not 32 bytes.
    #[error(
        "a salt starting with 0x must be 32 bytes (0x and 64 hex digits); any other text is hashed with keccak256"
    )]
    Salt,
    /// A token amount that is not a decimal number.
    #[error(
        "must be a decimal number in whole tokens, as a string (\"1000\" or \"0.25\"), with no sign, exponent or separators"
    )]
    NotDecimal,
    /// More fractional digits than the token has decimals.
    #[error("has more than {0} decimal places (the token's decimals)")]
    TooPrecise(u8),
    /// An amount beyond `uint128` in base units.
    #[error("is too large: in base units it must fit a uint128")]
    TooLarge,
    /// Not a usable environment variable name.
    #[error(
        "must be an environment variable name: letters, digits and _, not starting with a digit"
    )]
    EnvName,
    /// Not exactly one deployer key source.
    #[error("give either key_env, or hsm_token with hsm_label (not both)")]
    KeySource,
}

/// A deployment configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// The chain the configuration is for; the RPC endpoint must serve it.
    pub chain_id: u64,
    /// The CREATE2 salt of every contract.
    pub salt: B256,
    /// Owners, threshold, timelock delay and guardian.
    pub governance: Governance,
    /// Batch signers of the relayer to authorise.
    pub signers: Vec<Address>,
    /// Tokens to enable, with their limits.
    pub tokens: Vec<TokenLimits>,
    /// Who deploys.
    pub deployer: DeployerConfig,
}

/// Who governs the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Governance {
    /// Owners of the multisig, in constructor order (the order is part of its address).
    pub owners: Vec<Address>,
    /// Owner signatures the multisig requires.
    pub threshold: u64,
    /// The timelock's minimum delay, in seconds.
    pub min_delay: u64,
    /// The account that may pause at once.
    pub guardian: Address,
}

/// A token to enable and its limits, in base units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLimits {
    /// The token; the zero address is the native coin.
    pub token: Address,
    /// The largest single payment.
    pub max_payment: u128,
    /// The most settled per day.
    pub daily_cap: u128,
}

/// The deployer: its expected address and where its key is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeployerConfig {
    /// When set, any other deployer key is refused (the proxy's address depends on the deployer).
    pub address: Option<Address>,
    /// Where the key is, unless the command line says.
    pub key: Option<KeySource>,
}

/// Where the deployer's key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A hex private key in this environment variable (development chains).
    Env(String),
    /// A key pair on a PKCS#11 token.
    Hsm {
        /// The token label.
        token: String,
        /// The key pair's label.
        label: String,
    },
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(var) => write!(f, "the key in ${var}"),
            Self::Hsm { token, label } => write!(f, "HSM key {label:?} on token {token:?}"),
        }
    }
}

impl DeployConfig {
    /// Reads and validates the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Validates `text`, naming `path` in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_and_column(text, span.start));
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim().replace('\n', " "),
            }
        })?;
        parse_root(&table).map_err(|(key, problem)| ConfigError::Key {
            path: path.to_owned(),
            key,
            problem,
        })
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count().saturating_add(1);
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.chars().count())
        .saturating_add(1);
    (line, column)
}

/// A key path and what is wrong with it.
type Failure = (String, Problem);

/// One table of the file and the path to it, for error messages.
struct Section<'a> {
    prefix: String,
    table: &'a Table,
}

impl<'a> Section<'a> {
    /// Checks that `table` has only `allowed` keys (`shown` lists them for the message).
    fn new(
        prefix: String,
        table: &'a Table,
        allowed: &[&str],
        shown: &'static str,
    ) -> Result<Self, Failure> {
        let section = Self { prefix, table };
        if let Some(unknown) = table.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err((section.key(unknown), Problem::Unknown(shown)));
        }
        Ok(section)
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    fn required(&self, name: &str, hint: &'static str) -> Result<&'a Value, Failure> {
        self.table
            .get(name)
            .ok_or_else(|| (self.key(name), Problem::Missing(hint)))
    }

    fn table(&self, name: &str, allowed: &[&str], shown: &'static str) -> Result<Self, Failure> {
        let value = self.required(name, shown)?;
        let table = value
            .as_table()
            .ok_or_else(|| (self.key(name), Problem::Type("a table")))?;
        Self::new(self.key(name), table, allowed, shown)
    }

    fn integer(&self, name: &str, hint: &'static str, min: u64, max: u64) -> Result<u64, Failure> {
        let key = self.key(name);
        let value = self
            .required(name, hint)?
            .as_integer()
            .ok_or_else(|| (key.clone(), Problem::Type("an integer")))?;
        u64::try_from(value)
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or((key, Problem::Range { min, max }))
    }

    fn string(&self, name: &str, hint: &'static str) -> Result<&'a str, Failure> {
        self.optional_string(name)?
            .ok_or_else(|| (self.key(name), Problem::Missing(hint)))
    }

    fn optional_string(&self, name: &str) -> Result<Option<&'a str>, Failure> {
        self.table
            .get(name)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| (self.key(name), Problem::Type("a string")))
            })
            .transpose()
    }

    fn address(&self, name: &str, hint: &'static str) -> Result<Address, Failure> {
        parse_address(self.string(name, hint)?).map_err(|p| (self.key(name), p))
    }

    /// A list of distinct non-zero addresses.
    fn addresses(&self, name: &str, hint: &'static str) -> Result<Vec<Address>, Failure> {
        let key = self.key(name);
        let items = self
            .required(name, hint)?
            .as_array()
            .ok_or_else(|| (key.clone(), Problem::Type("a list of address strings")))?;
        let mut out: Vec<Address> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = || format!("{key}[{i}]");
            let text = item
                .as_str()
                .ok_or_else(|| (at(), Problem::Type("an address string")))?;
            let address = parse_address(text).map_err(|p| (at(), p))?;
            if address.is_zero() {
                return Err((at(), Problem::ZeroAddress));
            }
            if out.contains(&address) {
                return Err((key, Problem::Duplicate(address)));
            }
            out.push(address);
        }
        Ok(out)
    }
}

const ROOT_KEYS: &str = "chain_id, salt, [governance], [relayer], [[token]], [deployer]";
const GOVERNANCE_KEYS: &str = "owners, threshold, timelock_delay, guardian";
const RELAYER_KEYS: &str = "signers";
const TOKEN_KEYS: &str = "address, decimals, max_payment, daily_cap";
const DEPLOYER_KEYS: &str = "address, key_env, hsm_token, hsm_label";

fn parse_root(root: &Table) -> Result<DeployConfig, Failure> {
    let root = Section::new(
        String::new(),
        root,
        &[
            "chain_id",
            "salt",
            "governance",
            "relayer",
            "token",
            "deployer",
        ],
        ROOT_KEYS,
    )?;
    let chain_id = root.integer("chain_id", "chain_id = <the chain's id>", 1, u64::MAX)?;
    let salt = parse_salt(root.string("salt", "salt = \"<text or 0x + 64 hex digits>\"")?)
        .map_err(|p| (root.key("salt"), p))?;

    let gov = root.table(
        "governance",
        &["owners", "threshold", "timelock_delay", "guardian"],
        GOVERNANCE_KEYS,
    )?;
    let owners = gov.addresses("owners", "owners = [\"0x…\", …]")?;
    if owners.is_empty() {
        return Err((gov.key("owners"), Problem::Empty));
    }
    let owner_count = u64::try_from(owners.len()).unwrap_or(u64::MAX);
    let threshold = gov
        .integer(
            "threshold",
            "threshold = <signatures required>",
            1,
            owner_count,
        )
        .map_err(|(key, problem)| match problem {
            Problem::Range { .. } => (key, Problem::Threshold(owners.len())),
            other => (key, other),
        })?;
    // A year bounds a typo (milliseconds for seconds) without limiting real use.
    let min_delay = gov.integer(
        "timelock_delay",
        "timelock_delay = <seconds>",
        0,
        365 * 24 * 3600,
    )?;
    let guardian = gov.address("guardian", "guardian = \"0x…\"")?;
    if guardian.is_zero() {
        return Err((gov.key("guardian"), Problem::ZeroAddress));
    }

    let signers = match root.table.get("relayer") {
        None => Vec::new(),
        Some(_) => root
            .table("relayer", &["signers"], RELAYER_KEYS)?
            .addresses("signers", "signers = [\"0x…\"]")?,
    };

    let tokens = parse_tokens(&root)?;
    let deployer = match root.table.get("deployer") {
        None => DeployerConfig::default(),
        Some(_) => parse_deployer(&root.table(
            "deployer",
            &["address", "key_env", "hsm_token", "hsm_label"],
            DEPLOYER_KEYS,
        )?)?,
    };

    Ok(DeployConfig {
        chain_id,
        salt,
        governance: Governance {
            owners,
            threshold,
            min_delay,
            guardian,
        },
        signers,
        tokens,
        deployer,
    })
}

fn parse_tokens(root: &Section<'_>) -> Result<Vec<TokenLimits>, Failure> {
    let Some(value) = root.table.get("token") else {
        return Ok(Vec::new());
    };
    let items = value.as_array().ok_or_else(|| {
        (
            root.key("token"),
            Problem::Type("an array of tables ([[token]])"),
        )
    })?;
    let mut tokens: Vec<TokenLimits> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("token[{i}]");
        let table = item
            .as_table()
            .ok_or_else(|| (prefix.clone(), Problem::Type("a table ([[token]])")))?;
        let section = Section::new(
            prefix,
            table,
            &["address", "decimals", "max_payment", "daily_cap"],
            TOKEN_KEYS,
        )?;
        let token = section.address(
            "address",
            "address = \"0x…\" (0x0000000000000000000000000000000000000000 for the native coin)",
        )?;
        if let Some(seen) = tokens.iter().find(|t| t.token == token) {
            return Err((section.key("address"), Problem::Duplicate(seen.token)));
        }
        let decimals = section.integer(
            "decimals",
            "decimals = <the token's decimals, 18 for the native coin>",
            0,
            u64::from(MAX_DECIMALS),
        )?;
        let decimals = u8::try_from(decimals).unwrap_or(MAX_DECIMALS);
        let amount = |name: &str, hint| {
            parse_amount(section.string(name, hint)?, decimals).map_err(|p| (section.key(name), p))
        };
        tokens.push(TokenLimits {
            token,
            max_payment: amount("max_payment", "max_payment = \"<whole tokens>\"")?,
            daily_cap: amount("daily_cap", "daily_cap = \"<whole tokens>\"")?,
        });
    }
    Ok(tokens)
}

fn parse_deployer(section: &Section<'_>) -> Result<DeployerConfig, Failure> {
    let address = section
        .optional_string("address")?
        .map(|text| parse_address(text).map_err(|p| (section.key("address"), p)))
        .transpose()?;
    let env = section.optional_string("key_env")?;
    let token = section.optional_string("hsm_token")?;
    let label = section.optional_string("hsm_label")?;
    let key = match (env, token, label) {
        (None, None, None) => None,
        (Some(var), None, None) => {
            if !is_env_name(var) {
                return Err((section.key("key_env"), Problem::EnvName));
            }
            Some(KeySource::Env(var.to_owned()))
        }
        (None, Some(token), Some(label)) if !token.is_empty() && !label.is_empty() => {
            Some(KeySource::Hsm {
                token: token.to_owned(),
                label: label.to_owned(),
            })
        }
        _ => return Err((section.prefix.clone(), Problem::KeySource)),
    };
    Ok(DeployerConfig { address, key })
}

/// Whether `name` is a portable environment variable name.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `0x` and 40 hex digits; mixed case must carry a valid EIP-55 checksum.
pub fn parse_address(text: &str) -> Result<Address, Problem> {
    let digits = text.strip_prefix("0x").ok_or(Problem::NotAnAddress)?;
    let mut bytes = [0_u8; 20];
    if digits.len() != 40 {
        return Err(Problem::NotAnAddress);
    }
    alloy::hex::decode_to_slice(digits, &mut bytes).map_err(|_| Problem::NotAnAddress)?;
    let address = Address::from(bytes);
    let mixed = digits.bytes().any(|b| b.is_ascii_lowercase())
        && digits.bytes().any(|b| b.is_ascii_uppercase());
    if mixed && address.to_checksum(None).get(2..) != Some(digits) {
        return Err(Problem::Checksum);
    }
    Ok(address)
}

/// `0x` and 64 hex digits is the salt itself; any other non-empty text is hashed.
pub fn parse_salt(text: &str) -> Result<B256, Problem> {
    if text.is_empty() {
        return Err(Problem::Empty);
    }
    match text.strip_prefix("0x") {
        Some(digits) => {
            let mut bytes = [0_u8; 32];
            if digits.len() != 64 {
                return Err(Problem::Salt);
            }
            alloy::hex::decode_to_slice(digits, &mut bytes).map_err(|_| Problem::Salt)?;
            Ok(B256::from(bytes))
        }
        None => Ok(keccak256(text.as_bytes())),
    }
}

/// A decimal amount of whole tokens (`"1000"`, `"0.25"`) in base units of a token with `decimals`.
pub fn parse_amount(text: &str, decimals: u8) -> Result<u128, Problem> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) || text.ends_with('.') {
        return Err(Problem::NotDecimal);
    }
    let places = usize::from(decimals);
    if fraction.len() > places {
        return Err(Problem::TooPrecise(decimals));
    }
    let scale = 10_u128
        .checked_pow(u32::from(decimals))
        .ok_or(Problem::TooLarge)?;
    let whole: u128 = whole.parse().map_err(|_| Problem::TooLarge)?;
    // Right-pad the fraction to `decimals` digits: "25" with 6 decimals is 250000.
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        let padded = format!("{fraction:0<places$}");
        padded.parse().map_err(|_| Problem::TooLarge)?
    };
    whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction))
        .ok_or(Problem::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const GOOD: &str = r#"
chain_id = 31337
salt = "settle/test"

[governance]
owners = ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"]
threshold = 2
timelock_delay = 60
guardian = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"

[relayer]
signers = ["0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"]

[[token]]
address = "0x0000000000000000000000000000000000000000"
decimals = 18
max_payment = "10"
daily_cap = "1000.5"

[deployer]
address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
key_env = "SETTLE_DEPLOYER_KEY"
"#;

    fn parse(text: &str) -> Result<DeployConfig, ConfigError> {
        DeployConfig::parse(text, Path::new("anvil.toml"))
    }

    /// The one-line message for `text` with `from` replaced by `to`.
    fn error_with(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "{from}");
        let err = parse(&GOOD.replacen(from, to, 1)).expect_err("must be refused");
        let message = err.to_string();
        assert!(!message.contains('\n'), "one line: {message}");
        message
    }

    #[test]
    fn parses_every_key() {
        let config = parse(GOOD).expect("valid");
        assert_eq!(config.chain_id, 31337);
        assert_eq!(config.salt, keccak256("settle/test"));
        assert_eq!(
            config.governance,
            Governance {
                owners: vec![
                    address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
                    address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
                ],
                threshold: 2,
                min_delay: 60,
                guardian: address!("0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"),
            }
        );
        assert_eq!(
            config.signers,
            vec![address!("0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc")]
        );
        assert_eq!(
            config.tokens,
            vec![TokenLimits {
                token: Address::ZERO,
                max_payment: 10_000_000_000_000_000_000,
                daily_cap: 1_000_500_000_000_000_000_000,
            }]
        );
        assert_eq!(
            config.deployer,
            DeployerConfig {
                address: Some(address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")),
                key: Some(KeySource::Env("SETTLE_DEPLOYER_KEY".into())),
            }
        );
    }

    #[test]
    fn the_committed_anvil_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/anvil.toml");
        let config = DeployConfig::load(&path).expect("deploy/config/anvil.toml");
        assert_eq!(config.chain_id, 31337);
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        assert_eq!(
            error_with("threshold = 2", "threshold = 3"),
            "anvil.toml: governance.threshold: must be between 1 and the number of owners (2)"
        );
        assert_eq!(
            error_with("timelock_delay = 60\n", ""),
            "anvil.toml: governance.timelock_delay: missing; add timelock_delay = <seconds>"
        );
        assert_eq!(
            error_with("[relayer]", "[relayer]\nsigner = 1"),
            "anvil.toml: relayer.signer: unknown key; the keys here are signers"
        );
        assert_eq!(
            error_with("chain_id = 31337", "chain_id = \"31337\""),
            "anvil.toml: chain_id: must be an integer"
        );
        assert_eq!(
            error_with("chain_id = 31337", "chain_id = 0"),
            format!("anvil.toml: chain_id: must be between 1 and {}", u64::MAX)
        );
        assert_eq!(
            error_with(
                "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
                "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293Bc"
            ),
            "anvil.toml: governance.owners[1]: fails its EIP-55 checksum; check it for typos, \
             or write it all in lower case"
        );
        assert_eq!(
            error_with(
                "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
                "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
            ),
            "anvil.toml: governance.owners: lists 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 \
             more than once; list each address once"
        );
        assert_eq!(
            error_with(
                "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
                "0x0000000000000000000000000000000000000000"
            ),
            "anvil.toml: governance.owners[1]: must not be the zero address"
        );
        assert_eq!(
            error_with("max_payment = \"10\"", "max_payment = \"1e3\""),
            "anvil.toml: token[0].max_payment: must be a decimal number in whole tokens, as a \
             string (\"1000\" or \"0.25\"), with no sign, exponent or separators"
        );
        assert_eq!(
            error_with(
                "daily_cap = \"1000.5\"",
                "daily_cap = \"0.0000000000000000001\""
            ),
            "anvil.toml: token[0].daily_cap: has more than 18 decimal places (the token's decimals)"
        );
        assert_eq!(
            error_with(
                "daily_cap = \"1000.5\"",
                "daily_cap = \"400000000000000000000\""
            ),
            "anvil.toml: token[0].daily_cap: is too large: in base units it must fit a uint128"
        );
        assert_eq!(
            error_with("salt = \"settle/test\"", "salt = \"0x1234\""),
            "anvil.toml: salt: a salt starting with 0x must be 32 bytes (0x and 64 hex digits); \
             any other text is hashed with keccak256"
        );
        assert_eq!(
            error_with(
                "key_env = \"SETTLE_DEPLOYER_KEY\"",
                "key_env = \"K\"\nhsm_token = \"t\"\nhsm_label = \"l\""
            ),
            "anvil.toml: deployer: give either key_env, or hsm_token with hsm_label (not both)"
        );
        assert_eq!(
            error_with("threshold = 2", "threshold = 2\n  threshold = 2"),
            "anvil.toml:8:3: not valid TOML: duplicate key"
        );
    }

    #[test]
    fn salts_are_hex_or_hashed_text() {
        let hex = format!("0x{}", "ab".repeat(32));
        assert_eq!(parse_salt(&hex), Ok(B256::repeat_byte(0xab)));
        assert_eq!(parse_salt("v1"), Ok(keccak256("v1")));
        assert_eq!(parse_salt(""), Err(Problem::Empty));
        assert_eq!(
            parse_salt(&format!("0x{}", "zz".repeat(32))),
            Err(Problem::Salt)
        );
    }

    #[test]
    fn amounts_scale_by_decimals() {
        assert_eq!(parse_amount("1000", 6), Ok(1_000_000_000));
        assert_eq!(parse_amount("0.25", 6), Ok(250_000));
        assert_eq!(parse_amount("7", 0), Ok(7));
        assert_eq!(parse_amount(&u128::MAX.to_string(), 0), Ok(u128::MAX));
        assert_eq!(parse_amount("0.5", 0), Err(Problem::TooPrecise(0)));
        for bad in ["", ".5", "5.", "-1", "+1", "1_000", "1,5", " 1", "0x10"] {
            assert_eq!(parse_amount(bad, 6), Err(Problem::NotDecimal), "{bad:?}");
        }
    }
}
