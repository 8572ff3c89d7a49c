//! A fresh SoftHSM2 token per test, holding one secp256k1 key pair.
//!
//! PKCS#11 allows one `C_Initialize` per process and SoftHSM2 reads
//! `SOFTHSM2_CONF` only then, so the process shares one [`Pkcs11`] context
//! ([`pkcs11`]) and the config path comes from the environment cargo sets
//! (workspace `.cargo/config.toml`); it cannot be changed at runtime here.
//!
//! PKCS#11 login state is per token *and per process*: a user login on one
//! session logs in every session on that token, so code sharing a token in
//! one process must accept `CKR_USER_ALREADY_LOGGED_IN`.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock, PoisonError},
    time::{Duration, SystemTime},
};

use alloy::primitives::Address;
use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error as CkError, RvError},
    mechanism::Mechanism,
    object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    slot::Slot,
    types::AuthPin,
};
use uuid::Uuid;

use crate::{Error, Result};

/// Environment variable that overrides the PKCS#11 module path.
pub const MODULE_ENV: &str = "SETTLE_PKCS11_MODULE";

/// Where Debian's `softhsm2` package puts the module.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Environment variable SoftHSM2 reads its configuration path from.
pub const CONF_ENV: &str = "SOFTHSM2_CONF";

/// Security officer PIN of every test token.
pub const SO_PIN: &str = "settle-so-pin";

/// User PIN of every test token.
pub const USER_PIN: &str = "settle-user-pin";

/// Label of the key pair on every test token.
pub const KEY_LABEL: &str = "settle-test-key";

/// DER encoding of the secp256k1 OID 1.3.132.0.10, the value of `CKA_EC_PARAMS`.
pub const SECP256K1_OID_DER: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];

/// `04 || X || Y`.
const UNCOMPRESSED_POINT_LEN: usize = 65;

/// Token directories untouched for this long are deleted at start-up.
pub const STALE_TOKEN_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// First line of a config this crate wrote; only such configs are pruned.
const CONF_MARKER: &str = "# Written by settle-testkit; test tokens only.";

const TOKENDIR_KEY: &str = "directories.tokendir = ";

static CONTEXT: OnceLock<Pkcs11> = OnceLock::new();

/// Serialises context start-up and the choice of a free slot: two threads
/// must not both `C_InitToken` the same slot.
static SLOT_LOCK: Mutex<()> = Mutex::new(());

/// The PKCS#11 module path: `$SETTLE_PKCS11_MODULE`, else [`DEFAULT_MODULE`].
pub fn module_path() -> PathBuf {
    std::env::var_os(MODULE_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_MODULE), PathBuf::from)
}

/// The process-wide PKCS#11 context, initialised on first use.
///
/// The first call makes sure the SoftHSM2 config named by `SOFTHSM2_CONF`
/// exists (writing one with a token directory next to it if not), loads the
/// module and calls `C_Initialize` with `CKF_OS_LOCKING_OK`. If another
/// context in this process already initialised the same module, that is
/// accepted. The context is never finalised.
///
/// Before `C_Initialize`, and only if the config is one this crate wrote,
/// token directories untouched for [`STALE_TOKEN_AGE`] are deleted so the
/// token directory does not grow with every test run.
pub fn pkcs11() -> Result<&'static Pkcs11> {
    if let Some(ctx) = CONTEXT.get() {
        return Ok(ctx);
    }
    let _guard = SLOT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = CONTEXT.get() {
        return Ok(ctx);
    }
    let conf = ensure_conf()?;
    prune_stale_tokens(&conf, SystemTime::now());
    let path = module_path();
    if !path.is_file() {
        return Err(Error::Pkcs11ModuleNotFound { path });
    }
    let ctx = Pkcs11::new(&path)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(err) => return Err(err.into()),
    }
    Ok(CONTEXT.get_or_init(|| ctx))
}

/// Writes the SoftHSM2 config named by `SOFTHSM2_CONF` unless that path
/// exists, and returns the path.
fn ensure_conf() -> Result<PathBuf> {
    let conf = PathBuf::from(std::env::var_os(CONF_ENV).ok_or(Error::SoftHsmConfNotSet)?);
    if !conf.exists() {
        write_conf(&conf)?;
    }
    Ok(conf)
}

/// Deletes token directories not modified for [`STALE_TOKEN_AGE`], if `conf`
/// was written by this crate (never touches a token directory someone else
/// configured). Best effort: failures are ignored. Only safe before this
/// process initialises the module; a test process running for a day would
/// lose its tokens, which is accepted.
fn prune_stale_tokens(conf: &Path, now: SystemTime) {
    let Ok(body) = std::fs::read_to_string(conf) else {
        return;
    };
    if !body.starts_with(CONF_MARKER) {
        return;
    }
    let Some(token_dir) = body
        .lines()
        .find_map(|line| line.strip_prefix(TOKENDIR_KEY))
    else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(token_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age > STALE_TOKEN_AGE);
        if stale && entry.path().is_dir() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn write_conf(conf: &Path) -> Result<()> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::SoftHsmConf { path, source }
    };
    let dir = match conf.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::path::absolute(&dir).map_err(io_err(&dir))?;
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).map_err(io_err(&tokens))?;
    let body = format!(
        "{CONF_MARKER}\n\
         {TOKENDIR_KEY}{}\n\
         objectstore.backend = file\n\
         log.level = ERROR\n\
         slots.removable = false\n",
        tokens.display()
    );
    // Write-then-rename, so a concurrent test process never reads half a file.
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err(&dir))?;
    tmp.write_all(body.as_bytes()).map_err(io_err(conf))?;
    tmp.persist(conf).map_err(|e| io_err(conf)(e.error))?;
    Ok(())
}

/// A freshly initialised SoftHSM2 token with one secp256k1 key pair.
///
/// The private key is a token object, sensitive and non-extractable, allowed
/// to sign; both halves carry [`KEY_LABEL`] and a random `CKA_ID`.
///
/// The token outlives this value: PKCS#11 cannot delete a token, and
/// deleting its files while this process's SoftHSM2 still lists it breaks
/// later calls (`C_GetTokenInfo` returns `CKR_GENERAL_ERROR`). Instead,
/// token directories older than a day are pruned when a process starts
/// the module; see [`pkcs11`].
#[derive(Debug, Clone)]
pub struct TestToken {
    slot: Slot,
    module: PathBuf,
    token_label: String,
    key_id: Vec<u8>,
    public_key: [u8; UNCOMPRESSED_POINT_LEN],
    address: Address,
}

impl TestToken {
    /// Initialises a free slot as a new token and generates the key pair.
    pub fn create() -> Result<Self> {
        let ctx = pkcs11()?;
        let so_pin = AuthPin::from(SO_PIN);
        let user_pin = AuthPin::from(USER_PIN);
        // At most 32 bytes, unique across processes sharing the token dir.
        let token_label = format!("settle-test-{}", &Uuid::new_v4().simple().to_string()[..20]);

        let slot = {
            let _guard = SLOT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = free_slot(ctx)?;
            ctx.init_token(slot, &so_pin, &token_label)?;
            slot
        };

        let session = ctx.open_rw_session(slot)?;
        session.login(UserType::So, Some(&so_pin))?;
        session.init_pin(&user_pin)?;
        session.logout()?;
        session.login(UserType::User, Some(&user_pin))?;

        let key_id = Uuid::new_v4().as_bytes().to_vec();
        let label = KEY_LABEL.as_bytes().to_vec();
        let public_template = [
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::EcParams(SECP256K1_OID_DER.to_vec()),
            Attribute::Label(label.clone()),
            Attribute::Id(key_id.clone()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label),
            Attribute::Id(key_id.clone()),
        ];
        let (public, _private) = session.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &public_template,
            &private_template,
        )?;
        let public_key = uncompressed_point(&ec_point(&session, public)?)?;
        session.logout()?;
        session.close()?;

        Ok(Self {
            slot,
            module: module_path(),
            token_label,
            key_id,
            public_key,
            address: Address::from_raw_public_key(&public_key[1..]),
        })
    }

    /// The slot holding the token. Valid in this process only: SoftHSM2
    /// numbers slots afresh in each process, so other processes should find
    /// the token by [`Self::token_label`].
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// The PKCS#11 module the token lives in.
    pub fn module_path(&self) -> &Path {
        &self.module
    }

    /// The token label (`settle-test-<hex>`, 32 bytes).
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// The user PIN ([`USER_PIN`]).
    pub fn user_pin(&self) -> &'static str {
        USER_PIN
    }

    /// The security officer PIN ([`SO_PIN`]).
    pub fn so_pin(&self) -> &'static str {
        SO_PIN
    }

    /// The label of both halves of the key pair ([`KEY_LABEL`]).
    pub fn key_label(&self) -> &'static str {
        KEY_LABEL
    }

    /// The `CKA_ID` of both halves of the key pair (16 random bytes).
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// The public key, uncompressed SEC1: `0x04 || X || Y`.
    pub fn public_key(&self) -> &[u8; UNCOMPRESSED_POINT_LEN] {
        &self.public_key
    }

    /// The Ethereum address of the key: last 20 bytes of `keccak256(X || Y)`.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Opens a read-write session on the token and logs the user in
    /// (an existing login of this process is accepted).
    pub fn user_session(&self) -> Result<Session> {
        let session = pkcs11()?.open_rw_session(self.slot)?;
        match session.login(UserType::User, Some(&AuthPin::from(USER_PIN))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(err) => Err(err.into()),
        }
    }

    /// Finds the private key in `session` (opened on this token).
    pub fn private_key(&self, session: &Session) -> Result<ObjectHandle> {
        session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Label(KEY_LABEL.as_bytes().to_vec()),
                Attribute::Id(self.key_id.clone()),
            ])?
            .into_iter()
            .next()
            .ok_or_else(|| Error::KeyNotFound {
                label: KEY_LABEL.to_owned(),
            })
    }
}

/// The first slot whose token is not initialised. SoftHSM2 always keeps one,
/// adding a new one after the previous free slot was initialised.
fn free_slot(ctx: &Pkcs11) -> Result<Slot> {
    for slot in ctx.get_slots_with_token()? {
        if !ctx.get_token_info(slot)?.token_initialized() {
            return Ok(slot);
        }
    }
    Err(Error::NoFreeSlot)
}

fn ec_point(session: &Session, public: ObjectHandle) -> Result<Vec<u8>> {
    session
        .get_attributes(public, &[AttributeType::EcPoint])?
        .into_iter()
        .find_map(|attr| match attr {
            Attribute::EcPoint(point) => Some(point),
            _ => None,
        })
        .ok_or(Error::MissingAttribute {
            attribute: AttributeType::EcPoint,
        })
}

/// `CKA_EC_POINT` to `04 || X || Y`. PKCS#11 wraps the point in a DER
/// OCTET STRING (`04 41 04 || X || Y`); a bare 65-byte point is accepted too.
fn uncompressed_point(ec_point: &[u8]) -> Result<[u8; UNCOMPRESSED_POINT_LEN]> {
    let point = match ec_point {
        [0x04, 0x41, point @ ..] if point.len() == UNCOMPRESSED_POINT_LEN => point,
        point if point.len() == UNCOMPRESSED_POINT_LEN => point,
        _ => &[],
    };
    match <[u8; UNCOMPRESSED_POINT_LEN]>::try_from(point) {
        Ok(point) if point[0] == 0x04 => Ok(point),
        _ => Err(Error::BadEcPoint {
            len: ec_point.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point() -> Vec<u8> {
        let mut point = vec![0x04];
        point.extend((1..=64).map(|i: u8| i));
        point
    }

    #[test]
    fn der_wrapped_point_is_unwrapped() {
        let mut der = vec![0x04, 0x41];
        der.extend(point());
        assert_eq!(uncompressed_point(&der).expect("valid").to_vec(), point());
    }

    #[test]
    fn bare_point_is_accepted() {
        assert_eq!(
            uncompressed_point(&point()).expect("valid").to_vec(),
            point()
        );
    }

    #[test]
    fn compressed_or_truncated_points_are_rejected() {
        let mut compressed = vec![0x04, 0x21, 0x02];
        compressed.extend([7; 32]);
        assert!(matches!(
            uncompressed_point(&compressed),
            Err(Error::BadEcPoint { len: 35 })
        ));
        let mut wrong_tag = point();
        wrong_tag[0] = 0x02;
        assert!(matches!(
            uncompressed_point(&wrong_tag),
            Err(Error::BadEcPoint { len: 65 })
        ));
    }

    #[test]
    fn conf_is_written_with_a_token_dir_next_to_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("sub/softhsm2.conf");
        std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
        write_conf(&conf).expect("write conf");
        let body = std::fs::read_to_string(&conf).expect("read conf");
        let tokens = dir.path().join("sub/tokens");
        assert!(tokens.is_dir());
        assert!(body.contains(&format!("directories.tokendir = {}\n", tokens.display())));
        assert!(body.contains("objectstore.backend = file\n"));
        assert!(body.contains("log.level = ERROR\n"));
    }

    fn token_dir_aged(tokens: &Path, name: &str, age: Duration) -> PathBuf {
        let dir = tokens.join(name);
        std::fs::create_dir_all(&dir).expect("mkdir token");
        std::fs::write(dir.join("token.object"), b"x").expect("write token file");
        let handle = std::fs::File::open(&dir).expect("open token dir");
        handle
            .set_modified(SystemTime::now().checked_sub(age).expect("age fits"))
            .expect("set mtime");
        dir
    }

    #[test]
    fn prune_removes_only_stale_tokens_of_our_own_config() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("softhsm2.conf");
        write_conf(&conf).expect("write conf");
        let tokens = dir.path().join("tokens");
        let old = token_dir_aged(&tokens, "old", Duration::from_secs(2 * 24 * 60 * 60));
        let fresh = token_dir_aged(&tokens, "fresh", Duration::from_secs(60));

        prune_stale_tokens(&conf, SystemTime::now());
        assert!(!old.exists());
        assert!(fresh.is_dir());
    }

    #[test]
    fn prune_leaves_foreign_configs_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens = dir.path().join("tokens");
        let old = token_dir_aged(&tokens, "old", Duration::from_secs(3 * 24 * 60 * 60));
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\n", tokens.display()),
        )
        .expect("write foreign conf");

        prune_stale_tokens(&conf, SystemTime::now());
        assert!(old.is_dir());
    }
}
