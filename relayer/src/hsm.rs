//! A secp256k1 signer whose key never leaves a PKCS#11 token.
//!
//! The token signs a 32-byte prehash with `CKM_ECDSA` and returns `r || s`.
//! Ethereum wants the low-`s` form and a recovery parity, neither of which
//! PKCS#11 gives: `s` is folded into the lower half of the curve order and the
//! parity is read off the signature's point `R = s⁻¹(z·G + r·Q)`, computed with
//! the public key `Q` read at start-up (one double-scalar multiplication, the
//! work of an ECDSA verification, which this also is).
//!
//! A PKCS#11 session runs one operation at a time, so the signer keeps a small
//! pool of sessions and signs in as many at once. A session that the token
//! lost (closed, logged out, token restarted or re-inserted) is opened again,
//! logged in and pointed at the key again, and the signature retried once.

use std::{
    num::NonZeroUsize,
    sync::{
        Mutex, MutexGuard, PoisonError, TryLockError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use alloy::{
    consensus::SignableTransaction,
    network::TxSigner,
    primitives::{Address, B256, ChainId, Signature, U256, keccak256},
    signers::{Error as SignerError, Signer},
};
use cryptoki::{
    context::Pkcs11,
    error::{Error as CkError, RvError},
    mechanism::Mechanism,
    object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    slot::Slot,
    types::AuthPin,
};
use thiserror::Error;

/// Order of the secp256k1 group.
const SECP256K1_N: U256 = U256::from_be_slice(&hex_literal_n());
/// DER of the secp256k1 OID 1.3.132.0.10, as in `CKA_EC_PARAMS`.
pub(crate) const SECP256K1_OID_DER: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];

const fn hex_literal_n() -> [u8; 32] {
    [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ]
}

/// Why the HSM signer could not start or sign.
#[derive(Debug, Error)]
pub enum HsmError {
    /// No token with this label is present.
    #[error(
        "no PKCS#11 token labelled {0:?}; check the token label or create it with `settle keys`"
    )]
    TokenNotFound(String),
    /// The user PIN was rejected.
    #[error("the PIN for token {0:?} was rejected; check the configured PIN")]
    WrongPin(String),
    /// No private key with this label on the token.
    #[error("no private key labelled {key:?} on token {token:?}")]
    KeyNotFound {
        /// The token's label.
        token: String,
        /// The key label asked for.
        key: String,
    },
    /// The key exists but is not a secp256k1 EC key.
    #[error("key {0:?} is not a secp256k1 EC key; Ethereum signing needs secp256k1")]
    NotSecp256k1(String),
    /// The public key's EC point is not an uncompressed secp256k1 point.
    #[error("key {0:?} has an EC point that is not an uncompressed 65-byte point")]
    BadPublicKey(String),
    /// After logging in again, the label names a key with another address (the key was replaced).
    #[error(
        "key {key:?} now has address {found}, not {expected}; restart the signer to use the new key"
    )]
    KeyChanged {
        /// The key label.
        key: String,
        /// The address the signer started with.
        expected: Address,
        /// The address the label names now.
        found: Address,
    },
    /// The token returned a signature that is not 64 bytes of `r || s`.
    #[error("the token returned a {0}-byte signature; expected 64 bytes of r || s")]
    BadSignature(usize),
    /// Neither recovery parity yields the key's address (the token signed with another key).
    #[error("the token's signature does not recover to the key's address {0}")]
    Unrecoverable(Address),
    /// Any other PKCS#11 failure.
    #[error("PKCS#11: {0}")]
    Pkcs11(#[from] CkError),
}

/// Sessions a signer opens unless told otherwise.
pub const DEFAULT_SESSIONS: NonZeroUsize = NonZeroUsize::new(4).expect("4 is not zero");

/// How [`HsmSigner::open_with`] uses the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HsmOptions {
    /// Sessions in the pool: how many signatures can be in the token at once.
    pub sessions: NonZeroUsize,
}

impl Default for HsmOptions {
    fn default() -> Self {
        Self {
            sessions: DEFAULT_SESSIONS,
        }
    }
}

/// Everything needed to find the key again: the module, the token, the PIN and the key label.
struct KeyLocation {
    pkcs11: Pkcs11,
    token_label: String,
    pin: AuthPin,
    key_label: String,
}

/// A logged-in session and the private key's handle in it.
struct Connection {
    /// Opened with `*_no_drop`: dropping it does not close it (see [`Lane::discard`]).
    session: Session,
    key: ObjectHandle,
}

/// One pool entry; empty after a failed reconnect, until the next signature tries again.
struct Lane {
    connection: Option<Connection>,
}

/// How a session was lost, which decides whether it can still be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// The session handle is dead (closed, token removed or restarted).
    Session,
    /// The session lives but lost its login or its key handle.
    Login,
}

impl Loss {
    /// The session-level errors a reconnect can cure; anything else is final.
    const fn of(err: &CkError) -> Option<Self> {
        match err {
            CkError::Pkcs11(
                RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent,
                _,
            ) => Some(Self::Session),
            CkError::Pkcs11(
                RvError::UserNotLoggedIn | RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid,
                _,
            ) => Some(Self::Login),
            _ => None,
        }
    }
}

impl Lane {
    /// Drops the connection. A dead handle is not closed: after a module restart
    /// its number may already belong to a new session of this process.
    fn discard(&mut self, loss: Loss) {
        if let Some(connection) = self.connection.take()
            && loss == Loss::Login
        {
            let _closed = connection.session.close();
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _closed = connection.session.close();
        }
    }
}

/// A signing key on a PKCS#11 token.
pub struct HsmSigner {
    location: KeyLocation,
    lanes: Box<[Mutex<Lane>]>,
    /// Where the next signature starts looking for a free lane.
    next_lane: AtomicUsize,
    address: Address,
    /// The key's public point, for the recovery parity.
    public: k256::AffinePoint,
    chain_id: Option<ChainId>,
    /// Signatures made, and the microseconds they took (waiting for a lane included).
    signed: AtomicU64,
    signing_us: AtomicU64,
}

impl std::fmt::Debug for HsmSigner {
    // The PIN and the session handles stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmSigner")
            .field("token_label", &self.location.token_label)
            .field("key_label", &self.location.key_label)
            .field("address", &self.address)
            .field("sessions", &self.lanes.len())
            .finish()
    }
}

impl HsmSigner {
    /// Opens [`DEFAULT_SESSIONS`] sessions on the token labelled `token_label`,
    /// logs in with `pin` and finds the key pair labelled `key_label`; caches its address.
    pub fn open(
        pkcs11: &Pkcs11,
        token_label: &str,
        pin: &str,
        key_label: &str,
    ) -> Result<Self, HsmError> {
        Self::open_with(pkcs11, token_label, pin, key_label, HsmOptions::default())
    }

    /// [`Self::open`] with `options.sessions` sessions.
    pub fn open_with(
        pkcs11: &Pkcs11,
        token_label: &str,
        pin: &str,
        key_label: &str,
        options: HsmOptions,
    ) -> Result<Self, HsmError> {
        let location = KeyLocation {
            pkcs11: pkcs11.clone(),
            token_label: token_label.to_owned(),
            pin: AuthPin::from(pin),
            key_label: key_label.to_owned(),
        };
        let (first, address, public) = connect(&location)?;
        let mut lanes = Vec::with_capacity(options.sessions.get());
        lanes.push(Mutex::new(Lane {
            connection: Some(first),
        }));
        while lanes.len() < options.sessions.get() {
            // Build each lane before checking it, so a mismatch still closes its session.
            let (connection, found, _) = connect(&location)?;
            lanes.push(Mutex::new(Lane {
                connection: Some(connection),
            }));
            check_same_key(&location, address, found)?;
        }
        Ok(Self {
            location,
            lanes: lanes.into_boxed_slice(),
            next_lane: AtomicUsize::new(0),
            signed: AtomicU64::new(0),
            signing_us: AtomicU64::new(0),
            address,
            public,
            chain_id: None,
        })
    }

    /// The key's Ethereum address.
    pub const fn address(&self) -> Address {
        self.address
    }

    /// How many sessions the signer keeps.
    pub fn sessions(&self) -> usize {
        self.lanes.len()
    }

    /// Signs a 32-byte prehash; the signature has low `s` and the parity that recovers [`Self::address`].
    ///
    /// Up to [`Self::sessions`] calls sign at once; more wait for a session.
    pub fn sign_prehash(&self, hash: &B256) -> Result<Signature, HsmError> {
        let started = std::time::Instant::now();
        let raw = {
            let mut lane = self.lane();
            self.sign_in(&mut lane, hash)?
        };
        let signature = ethereum_signature_for(&raw, hash, &self.public)
            .ok_or(HsmError::Unrecoverable(self.address))?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.signed.fetch_add(1, Ordering::Relaxed);
        self.signing_us.fetch_add(micros, Ordering::Relaxed);
        Ok(signature)
    }

    /// Signatures made by this signer so far, and the total microseconds they took.
    pub fn signing_stats(&self) -> (u64, u64) {
        (
            self.signed.load(Ordering::Relaxed),
            self.signing_us.load(Ordering::Relaxed),
        )
    }

    /// A free lane if there is one (round robin from a moving start), else waits for the start lane.
    fn lane(&self) -> MutexGuard<'_, Lane> {
        let count = self.lanes.len();
        let start = self.next_lane.fetch_add(1, Ordering::Relaxed);
        let index = |offset: usize| start.wrapping_add(offset).checked_rem(count).unwrap_or(0);
        for offset in 0..count {
            match self.lanes[index(offset)].try_lock() {
                Ok(lane) => return lane,
                // A panic mid-signature leaves nothing half-done that matters: the token owns the state.
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.lanes[index(0)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Signs in `lane`; a session the token lost is reopened and the signature retried once.
    fn sign_in(&self, lane: &mut Lane, hash: &B256) -> Result<Vec<u8>, HsmError> {
        if let Some(connection) = &lane.connection {
            match connection
                .session
                .sign(&Mechanism::Ecdsa, connection.key, hash.as_slice())
            {
                Ok(raw) => return Ok(raw),
                Err(err) => match Loss::of(&err) {
                    Some(loss) => {
                        tracing::warn!(
                            token = %self.location.token_label,
                            key = %self.location.key_label,
                            error = %err,
                            "HSM session lost; logging in again"
                        );
                        lane.discard(loss);
                    }
                    None => return Err(err.into()),
                },
            }
        }
        let (connection, found, _) = connect(&self.location)?;
        if let Err(err) = check_same_key(&self.location, self.address, found) {
            let _closed = connection.session.close();
            return Err(err);
        }
        let connection = lane.connection.insert(connection);
        Ok(connection
            .session
            .sign(&Mechanism::Ecdsa, connection.key, hash.as_slice())?)
    }
}

/// Refuses a key whose address is not the one the signer started with.
fn check_same_key(
    location: &KeyLocation,
    expected: Address,
    found: Address,
) -> Result<(), HsmError> {
    if found == expected {
        Ok(())
    } else {
        Err(HsmError::KeyChanged {
            key: location.key_label.clone(),
            expected,
            found,
        })
    }
}

/// Opens a session on the token, logs in and finds the key pair; returns the session, the
/// private key's handle, the public key's address and its point.
fn connect(location: &KeyLocation) -> Result<(Connection, Address, k256::AffinePoint), HsmError> {
    let slot = find_token(&location.pkcs11, &location.token_label)?;
    // Signing needs no write access; `no_drop` because a dead handle must not be closed (see `Lane::discard`).
    let session = location.pkcs11.open_ro_session_no_drop(slot)?;
    match find_key(&session, location) {
        Ok((key, address, public)) => Ok((Connection { session, key }, address, public)),
        Err(err) => {
            let _closed = session.close();
            Err(err)
        }
    }
}

fn find_key(
    session: &Session,
    location: &KeyLocation,
) -> Result<(ObjectHandle, Address, k256::AffinePoint), HsmError> {
    login(session, &location.token_label, &location.pin)?;
    let find = |class| {
        session.find_objects(&[
            Attribute::Class(class),
            Attribute::Label(location.key_label.as_bytes().to_vec()),
        ])
    };
    let missing = || HsmError::KeyNotFound {
        token: location.token_label.clone(),
        key: location.key_label.clone(),
    };
    let key = find(ObjectClass::PRIVATE_KEY)?
        .into_iter()
        .next()
        .ok_or_else(missing)?;
    let public = find(ObjectClass::PUBLIC_KEY)?
        .into_iter()
        .next()
        .ok_or_else(missing)?;
    let (address, point) = secp256k1_public(session, public, &location.key_label)?;
    Ok((key, address, point))
}

/// The slot holding the token labelled `token_label`.
pub(crate) fn find_token(pkcs11: &Pkcs11, token_label: &str) -> Result<Slot, HsmError> {
    pkcs11
        .get_slots_with_token()?
        .into_iter()
        .find(|slot| {
            pkcs11
                .get_token_info(*slot)
                .is_ok_and(|info| info.label().trim() == token_label)
        })
        .ok_or_else(|| HsmError::TokenNotFound(token_label.to_owned()))
}

/// Logs the user in. Login state is per token and process, so an existing login is fine.
pub(crate) fn login(session: &Session, token_label: &str, pin: &AuthPin) -> Result<(), HsmError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(
            RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
            _,
        )) => Err(HsmError::WrongPin(token_label.to_owned())),
        Err(err) => Err(err.into()),
    }
}

/// The address of a secp256k1 public key object; `label` names it in errors.
pub(crate) fn secp256k1_address(
    session: &Session,
    public: ObjectHandle,
    label: &str,
) -> Result<Address, HsmError> {
    secp256k1_public(session, public, label).map(|(address, _)| address)
}

/// Like [`secp256k1_address`], with the public point too.
fn secp256k1_public(
    session: &Session,
    public: ObjectHandle,
    label: &str,
) -> Result<(Address, k256::AffinePoint), HsmError> {
    let attrs = session.get_attributes(
        public,
        &[
            AttributeType::KeyType,
            AttributeType::EcParams,
            AttributeType::EcPoint,
        ],
    )?;
    let (mut key_type, mut params, mut point) = (None, None, None);
    for attr in attrs {
        match attr {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    if key_type != Some(KeyType::EC) || params.as_deref() != Some(SECP256K1_OID_DER.as_slice()) {
        return Err(HsmError::NotSecp256k1(label.to_owned()));
    }
    let bad = || HsmError::BadPublicKey(label.to_owned());
    let point = point.as_deref().ok_or_else(bad)?;
    let address = address_of_ec_point(point).ok_or_else(bad)?;
    let bare = point.strip_prefix(&[0x04, 0x41][..]).unwrap_or(point);
    let parsed = k256::PublicKey::from_sec1_bytes(bare).map_err(|_| bad())?;
    Ok((address, *parsed.as_affine()))
}

// alloy's signer traits, so the HSM key can sign EIP-712 digests and the relayer's own transactions
// (an `EthereumWallet` takes it as is).
#[async_trait::async_trait]
impl Signer for HsmSigner {
    async fn sign_hash(&self, hash: &B256) -> alloy::signers::Result<Signature> {
        self.sign_prehash(hash).map_err(SignerError::other)
    }

    fn address(&self) -> Address {
        self.address
    }

    fn chain_id(&self) -> Option<ChainId> {
        self.chain_id
    }

    fn set_chain_id(&mut self, chain_id: Option<ChainId>) {
        self.chain_id = chain_id;
    }
}

#[async_trait::async_trait]
impl TxSigner<Signature> for HsmSigner {
    fn address(&self) -> Address {
        self.address
    }

    async fn sign_transaction(
        &self,
        tx: &mut dyn SignableTransaction<Signature>,
    ) -> alloy::signers::Result<Signature> {
        if let Some(chain_id) = self.chain_id
            && !tx.set_chain_id_checked(chain_id)
        {
            return Err(SignerError::TransactionChainIdMismatch {
                signer: chain_id,
                tx: tx.chain_id().unwrap_or_default(),
            });
        }
        self.sign_prehash(&tx.signature_hash())
            .map_err(SignerError::other)
    }
}

/// Turns a PKCS#11 `r || s` into an Ethereum signature: low `s`, parity found by recovery.
pub fn ethereum_signature(raw: &[u8], hash: &B256, signer: Address) -> Result<Signature, HsmError> {
    if raw.len() != 64 {
        return Err(HsmError::BadSignature(raw.len()));
    }
    let r = U256::from_be_slice(&raw[..32]);
    let mut s = U256::from_be_slice(&raw[32..]);
    // Fold a high s into the lower half: (r, n - s) is the same signature with the other parity.
    if s > SECP256K1_N.wrapping_shr(1) {
        s = SECP256K1_N
            .checked_sub(s)
            .ok_or(HsmError::BadSignature(raw.len()))?;
    }
    [false, true]
        .into_iter()
        .map(|parity| Signature::new(r, s, parity))
        .find(|sig| {
            sig.recover_address_from_prehash(hash)
                .is_ok_and(|a| a == signer)
        })
        .ok_or(HsmError::Unrecoverable(signer))
}

/// Turns a PKCS#11 `r || s` by the key `public` over `hash` into an Ethereum signature: low `s`,
/// and the parity of `R = s⁻¹(z·G + r·Q)`. `None` if the signature does not verify (then no parity
/// is right), so a wrong key or a corrupted signature is never passed on.
// Scalar arithmetic is modulo the curve order: it cannot overflow.
#[allow(clippy::arithmetic_side_effects)]
pub fn ethereum_signature_for(
    raw: &[u8],
    hash: &B256,
    public: &k256::AffinePoint,
) -> Option<Signature> {
    use k256::{
        ProjectivePoint, Scalar, U256 as K256,
        elliptic_curve::{
            PrimeField,
            ops::{LinearCombination, Reduce},
            point::AffineCoordinates,
            scalar::IsHigh,
        },
    };
    if raw.len() != 64 {
        return None;
    }
    let field = |bytes: &[u8]| {
        let mut out = k256::FieldBytes::default();
        out.copy_from_slice(bytes);
        out
    };
    let scalar = |bytes: &[u8]| Option::<Scalar>::from(Scalar::from_repr(field(bytes)));
    let r = scalar(&raw[..32])?;
    let mut s = scalar(&raw[32..])?;
    if bool::from(s.is_high()) {
        s = -s;
    }
    let s_inv = Option::<Scalar>::from(s.invert())?;
    let z = <Scalar as Reduce<K256>>::reduce_bytes(&field(hash.as_slice()));
    let point = ProjectivePoint::lincomb(
        &ProjectivePoint::GENERATOR,
        &(z * s_inv),
        &ProjectivePoint::from(*public),
        &(r * s_inv),
    )
    .to_affine();
    if point == k256::AffinePoint::IDENTITY
        || <Scalar as Reduce<K256>>::reduce_bytes(&point.x()) != r
    {
        return None;
    }
    Some(Signature::new(
        U256::from_be_slice(&r.to_bytes()),
        U256::from_be_slice(&s.to_bytes()),
        bool::from(point.y_is_odd()),
    ))
}

/// The address of an uncompressed point, bare (`04 || X || Y`) or DER-wrapped (`04 41 04 || X || Y`).
pub fn address_of_ec_point(point: &[u8]) -> Option<Address> {
    let bare = match point {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        _ if point.len() == 65 => point,
        _ => return None,
    };
    match bare {
        [0x04, xy @ ..] => Some(Address::from_slice(&keccak256(xy)[12..])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::mpsc, time::Duration};

    use settle_testkit::{TestToken, pkcs11};

    use super::*;

    /// With every session but one busy, a signature takes the free one instead of waiting.
    #[test]
    fn a_signature_takes_a_free_session_while_the_others_are_busy() {
        let token = TestToken::create().expect("token");
        let signer = HsmSigner::open_with(
            pkcs11().expect("pkcs11"),
            token.token_label(),
            token.user_pin(),
            token.key_label(),
            HsmOptions {
                sessions: NonZeroUsize::new(3).expect("non-zero"),
            },
        )
        .expect("signer opens");
        let (signer, expected) = (&signer, token.address());
        let count = signer.lanes.len();
        for free in 0..count {
            let busy: Vec<_> = (0..count)
                .filter(|lane| *lane != free)
                .map(|lane| signer.lanes[lane].lock().expect("lane"))
                .collect();
            let (sent, signed) = mpsc::channel();
            // `busy` moves into the scope, so a failed wait releases the lanes and the scope can end.
            std::thread::scope(move |scope| {
                // As many signatures as lanes, so the round robin starts once at every lane.
                scope.spawn(move || {
                    for i in 0..count {
                        let hash = keccak256([free, i].map(usize::to_be_bytes).concat());
                        sent.send((hash, signer.sign_prehash(&hash))).expect("send");
                    }
                });
                for _ in 0..count {
                    // Only bounds a wrong implementation that would wait for a busy lane forever.
                    let (hash, signature) = signed
                        .recv_timeout(Duration::from_secs(60))
                        .expect("signed without waiting for a busy session");
                    assert_eq!(
                        signature
                            .expect("sign")
                            .recover_address_from_prehash(&hash)
                            .expect("recover"),
                        expected
                    );
                }
                drop(busy);
            });
        }
    }

    #[test]
    fn point_forms() {
        let mut bare = vec![0x04];
        bare.extend_from_slice(&[7u8; 64]);
        let expected = Address::from_slice(&keccak256([7u8; 64])[12..]);
        assert_eq!(address_of_ec_point(&bare), Some(expected));
        let mut der = vec![0x04, 0x41];
        der.extend_from_slice(&bare);
        assert_eq!(address_of_ec_point(&der), Some(expected));
        assert_eq!(address_of_ec_point(&bare[..64]), None);
        bare[0] = 0x02;
        assert_eq!(address_of_ec_point(&bare), None);
    }

    #[test]
    fn wrong_length_signature_is_an_error() {
        assert!(matches!(
            ethereum_signature(&[0u8; 63], &B256::ZERO, Address::ZERO),
            Err(HsmError::BadSignature(63))
        ));
    }

    /// The parity read off `R` equals the one recovery finds, for low and high `s`; another key
    /// or a corrupted signature gives none.
    #[test]
    fn the_parity_from_the_signature_point_equals_the_recovered_one() {
        let key = k256::ecdsa::SigningKey::from_bytes(&keccak256("parity").0.into()).expect("key");
        let public = *key.verifying_key().as_affine();
        let address = address_of_ec_point(key.verifying_key().to_encoded_point(false).as_bytes())
            .expect("address");
        let other = *k256::ecdsa::SigningKey::from_bytes(&keccak256("other").0.into())
            .expect("key")
            .verifying_key()
            .as_affine();
        let mut parities = [0u32; 2];
        for i in 0u32..64 {
            let hash = keccak256(i.to_be_bytes());
            let (sig, _) = key
                .sign_prehash_recoverable(hash.as_slice())
                .expect("signed");
            let low = sig.to_bytes();
            // The same signature with s in the upper half, as a token may return it.
            let n = SECP256K1_N.to_be_bytes::<32>();
            let s = U256::from_be_slice(&low[32..]);
            let mut high = low.to_vec();
            high[32..].copy_from_slice(&U256::from_be_bytes(n).wrapping_sub(s).to_be_bytes::<32>());
            for raw in [&low[..], &high[..]] {
                let fast = ethereum_signature_for(raw, &hash, &public).expect("verifies");
                let slow = ethereum_signature(raw, &hash, address).expect("recovers");
                assert_eq!(fast, slow);
                assert_eq!(
                    fast.recover_address_from_prehash(&hash).expect("recover"),
                    address
                );
                assert!(ethereum_signature_for(raw, &hash, &other).is_none());
            }
            parities[usize::from(ethereum_signature_for(&low, &hash, &public).expect("v").v())] +=
                1;
            let mut corrupt = low.to_vec();
            corrupt[40] ^= 1;
            assert!(ethereum_signature_for(&corrupt, &hash, &public).is_none());
        }
        // Both parities occurred, so both branches were checked against recovery.
        assert!(parities[0] > 0 && parities[1] > 0, "{parities:?}");
    }
}
