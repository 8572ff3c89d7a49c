//! The one error type of the testkit.

use std::path::PathBuf;

use alloy::node_bindings::NodeError;
use cryptoki::object::AttributeType;

/// Result alias for the testkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while setting up a test fixture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A transaction or call on the test chain failed.
    #[error("test chain: {0}")]
    Chain(String),

    /// A private Postgres server ([`crate::PgCluster`]) could not be set up, started or stopped.
    #[error("private Postgres cluster: {0}")]
    Cluster(String),

    /// No anvil binary in `node_modules` or on `PATH` (and `SETTLE_ANVIL` unset).
    #[error(
        "anvil binary not found (looked at {} and on PATH); run ./scripts/setup, or point SETTLE_ANVIL at an anvil binary",
        bundled.display()
    )]
    AnvilNotFound {
        /// Where `./scripts/setup` installs it.
        bundled: PathBuf,
    },

    /// `SETTLE_ANVIL` is set but is not a file.
    #[error("SETTLE_ANVIL={} is not a file; fix or unset it (./scripts/setup installs anvil)", path.display())]
    AnvilEnvInvalid {
        /// The value of `SETTLE_ANVIL`.
        path: PathBuf,
    },

    /// anvil was found but did not start or did not report its address in time.
    #[error("anvil at {} failed to start", path.display())]
    AnvilSpawn {
        /// The binary that was run.
        path: PathBuf,
        /// What alloy's node bindings reported.
        #[source]
        source: NodeError,
    },

    /// `SETTLE_TEST_DATABASE_URL` (or the default admin URL) does not parse.
    #[error("SETTLE_TEST_DATABASE_URL is not a valid postgres:// URL")]
    InvalidDatabaseUrl(#[source] sqlx::Error),

    /// The admin connection to Postgres could not be opened.
    #[error(
        "cannot connect to Postgres at {host}:{port} (set SETTLE_TEST_DATABASE_URL to an admin URL, or run ./scripts/setup to start the local server)"
    )]
    PostgresConnect {
        /// Host from the admin URL.
        host: String,
        /// Port from the admin URL.
        port: u16,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// A statement on the admin connection or the test database failed.
    #[error("Postgres statement failed while managing test database {database}")]
    Postgres {
        /// The test database concerned.
        database: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// The PKCS#11 module (SoftHSM2) is not installed where expected.
    #[error(
        "PKCS#11 module {} not found; run ./scripts/setup (installs softhsm2), or set SETTLE_PKCS11_MODULE",
        path.display()
    )]
    Pkcs11ModuleNotFound {
        /// The path that was tried.
        path: PathBuf,
    },

    /// `SOFTHSM2_CONF` is not set, so SoftHSM2 would use the system token directory.
    #[error(
        "SOFTHSM2_CONF is not set; run through cargo (the workspace .cargo/config.toml sets it) or export it"
    )]
    SoftHsmConfNotSet,

    /// The private SoftHSM2 config or token directory could not be written.
    #[error("cannot write SoftHSM2 config at {}", path.display())]
    SoftHsmConf {
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A PKCS#11 call failed.
    #[error("PKCS#11 call failed")]
    Pkcs11(#[from] cryptoki::error::Error),

    /// SoftHSM2 offered no slot with an uninitialised token.
    #[error("SoftHSM2 has no free (uninitialised) slot")]
    NoFreeSlot,

    /// The module did not return an attribute that was asked for.
    #[error("PKCS#11 object has no {attribute} attribute")]
    MissingAttribute {
        /// The attribute asked for.
        attribute: AttributeType,
    },

    /// `CKA_EC_POINT` is not an uncompressed secp256k1 point (raw or DER OCTET STRING).
    #[error("CKA_EC_POINT is not an uncompressed secp256k1 point ({len} bytes)")]
    BadEcPoint {
        /// Length of the value received.
        len: usize,
    },

    /// No private key with the token's key label was found on the token.
    #[error("no private key labelled {label} on the token")]
    KeyNotFound {
        /// The key label searched for.
        label: String,
    },
}
