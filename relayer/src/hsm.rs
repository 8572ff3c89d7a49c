//! A secp256k1 signer whose key never leaves a PKCS#11 token.
//!
//! The token signs a 32-byte prehash with `CKM_ECDSA` and returns `r || s`.
//! Ethereum wants the low-`s` form and a recovery parity, neither of which
//! PKCS#11 gives: `s` is folded into the lower half of the curve order and the
//! parity is found by recovering against the public key read at start-up.

use std::sync::{Mutex, PoisonError};

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
    types::AuthPin,
};
use thiserror::Error;

/// Order of the secp256k1 group.
const SECP256K1_N: U256 = U256::from_be_slice(&hex_literal_n());
/// DER of the secp256k1 OID 1.3.132.0.10, as in `CKA_EC_PARAMS`.
const SECP256K1_OID_DER: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];

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

/// A signing key on a PKCS#11 token.
pub struct HsmSigner {
    session: Mutex<Session>,
    key: ObjectHandle,
    address: Address,
    key_label: String,
    chain_id: Option<ChainId>,
}

impl std::fmt::Debug for HsmSigner {
    // The session handle stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmSigner")
            .field("key_label", &self.key_label)
            .field("address", &self.address)
            .finish()
    }
}

impl HsmSigner {
    /// Opens a session on the token labelled `token_label`, logs in with `pin`
    /// and finds the key pair labelled `key_label`; caches its address.
    pub fn open(
        pkcs11: &Pkcs11,
        token_label: &str,
        pin: &str,
        key_label: &str,
    ) -> Result<Self, HsmError> {
        let slot = pkcs11
            .get_slots_with_token()?
            .into_iter()
            .find(|slot| {
                pkcs11
                    .get_token_info(*slot)
                    .is_ok_and(|info| info.label().trim() == token_label)
            })
            .ok_or_else(|| HsmError::TokenNotFound(token_label.to_owned()))?;
        let session = pkcs11.open_rw_session(slot)?;
        match session.login(UserType::User, Some(&AuthPin::from(pin.to_owned()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(
                RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
                _,
            )) => {
                return Err(HsmError::WrongPin(token_label.to_owned()));
            }
            Err(e) => return Err(e.into()),
        }
        let find = |class| {
            session.find_objects(&[
                Attribute::Class(class),
                Attribute::Label(key_label.as_bytes().to_vec()),
            ])
        };
        let missing = || HsmError::KeyNotFound {
            token: token_label.to_owned(),
            key: key_label.to_owned(),
        };
        let key = find(ObjectClass::PRIVATE_KEY)?
            .into_iter()
            .next()
            .ok_or_else(missing)?;
        let public = find(ObjectClass::PUBLIC_KEY)?
            .into_iter()
            .next()
            .ok_or_else(missing)?;

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
        if key_type != Some(KeyType::EC) || params.as_deref() != Some(SECP256K1_OID_DER.as_slice())
        {
            return Err(HsmError::NotSecp256k1(key_label.to_owned()));
        }
        let address = point
            .as_deref()
            .and_then(address_of_ec_point)
            .ok_or_else(|| HsmError::BadPublicKey(key_label.to_owned()))?;
        Ok(Self {
            session: Mutex::new(session),
            key,
            address,
            key_label: key_label.to_owned(),
            chain_id: None,
        })
    }

    /// The key's Ethereum address.
    pub const fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte prehash; the signature has low `s` and the parity that recovers [`Self::address`].
    pub fn sign_prehash(&self, hash: &B256) -> Result<Signature, HsmError> {
        let raw = {
            let session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
            session.sign(&Mechanism::Ecdsa, self.key, hash.as_slice())?
        };
        ethereum_signature(&raw, hash, self.address)
    }
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
    use super::*;

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
}
