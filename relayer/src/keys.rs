//! The relayer's keys: generated and listed on the PKCS#11 token, tracked per contract in Postgres.
//!
//! On the token ([`generate_key`], [`list_keys`]) a key is a secp256k1 pair whose halves share a
//! label and a random `CKA_ID`; the private half is sensitive, non-extractable and may only sign.
//!
//! The registry ([`KeyRegistry`]) records which key signs for a contract in each [`KeyRole`]
//! and where it is in its rotation:
//!
//! ```text
//! activate(B) -> B active, the previously active A -> retiring -> retire(A) -> A retired
//!                          (activate(A) again rolls the rotation back)
//! ```
//!
//! A key enters the registry by being activated. A retiring key is no longer used to sign but
//! may still have batches or transactions in flight, so the contract should keep accepting it
//! until it is retired. Retired is final: a retired key is never activated again. The database
//! holds at most one active key per chain, contract and role (a partial unique index), and
//! activations of one role are serialised with an advisory lock.

use alloy::primitives::Address;
use cryptoki::{
    context::Pkcs11,
    mechanism::Mechanism,
    object::{Attribute, AttributeType, KeyType, ObjectClass},
    types::AuthPin,
};
use sqlx::{
    PgPool, Row,
    postgres::PgRow,
    types::chrono::{DateTime, Utc},
};
use thiserror::Error;

use crate::hsm::{self, HsmError, SECP256K1_OID_DER};

/// Bytes of random `CKA_ID` given to a new key pair.
const KEY_ID_LEN: u32 = 16;

/// Why a key could not be generated, listed or registered.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The token could not be reached or refused the operation.
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// An object with this label already exists on the token.
    #[error("token {token:?} already holds an object labelled {label:?}; choose another label")]
    LabelTaken {
        /// The token's label.
        token: String,
        /// The label asked for.
        label: String,
    },
    /// The chain id does not fit the database's `bigint`.
    #[error("chain id {0} is out of range; chain ids above 2^63 - 1 are not supported")]
    ChainIdOutOfRange(u64),
    /// The key is registered under another label.
    #[error("key {address} is registered as {registered:?}, not {given:?}")]
    LabelMismatch {
        /// The key's address.
        address: Address,
        /// The label in the registry.
        registered: String,
        /// The label given.
        given: String,
    },
    /// A retired key cannot become active again.
    #[error("key {0} is retired and cannot be activated again; generate a new key")]
    Retired(Address),
    /// The key is not in the registry for this contract and role.
    #[error("key {0} is not registered for this contract and role")]
    NotRegistered(Address),
    /// Only a retiring key can be retired.
    #[error("key {address} is {status}, not retiring; only a retiring key can be retired")]
    NotRetiring {
        /// The key's address.
        address: Address,
        /// Its status.
        status: KeyStatus,
    },
    /// A registry row holds a value the schema should have refused.
    #[error("relayer.signer_keys holds an unexpected {column}: {value:?}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// What it holds.
        value: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A secp256k1 key pair on the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The label both halves carry.
    pub label: String,
    /// The `CKA_ID` both halves carry, lower-case hex.
    pub id: String,
    /// The key's Ethereum address.
    pub address: Address,
}

/// Generates a secp256k1 key pair labelled `key_label` on the token; returns its address.
///
/// Refuses ([`KeyError::LabelTaken`]) if any object on the token already has the label.
pub fn generate_key(
    pkcs11: &Pkcs11,
    token_label: &str,
    pin: &str,
    key_label: &str,
) -> Result<Address, KeyError> {
    let slot = hsm::find_token(pkcs11, token_label)?;
    let session = pkcs11.open_rw_session(slot).map_err(HsmError::from)?;
    // No logout afterwards: login state is per token and process, and a logout would log out
    // every signer of this process on the token.
    hsm::login(&session, token_label, &AuthPin::from(pin))?;
    let label = key_label.as_bytes().to_vec();
    let taken = session
        .find_objects(&[Attribute::Label(label.clone())])
        .map_err(HsmError::from)?;
    if !taken.is_empty() {
        return Err(KeyError::LabelTaken {
            token: token_label.to_owned(),
            label: key_label.to_owned(),
        });
    }
    let id = session
        .generate_random_vec(KEY_ID_LEN)
        .map_err(HsmError::from)?;
    let public_template = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(SECP256K1_OID_DER.to_vec()),
        Attribute::Label(label.clone()),
        Attribute::Id(id.clone()),
    ];
    let private_template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Derive(false),
        Attribute::Label(label),
        Attribute::Id(id),
    ];
    let (public, _private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &public_template,
            &private_template,
        )
        .map_err(HsmError::from)?;
    Ok(hsm::secp256k1_address(&session, public, key_label)?)
}

/// Every secp256k1 key pair on the token (public and private half with the same label and id),
/// ordered by label.
pub fn list_keys(pkcs11: &Pkcs11, token_label: &str, pin: &str) -> Result<Vec<KeyInfo>, KeyError> {
    let slot = hsm::find_token(pkcs11, token_label)?;
    let session = pkcs11.open_ro_session(slot).map_err(HsmError::from)?;
    // Private objects are invisible without a login; the pairing check needs them.
    hsm::login(&session, token_label, &AuthPin::from(pin))?;
    let publics = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
        ])
        .map_err(HsmError::from)?;
    let mut keys = Vec::new();
    for public in publics {
        let (mut label, mut id) = (Vec::new(), Vec::new());
        for attr in session
            .get_attributes(public, &[AttributeType::Label, AttributeType::Id])
            .map_err(HsmError::from)?
        {
            match attr {
                Attribute::Label(l) => label = l,
                Attribute::Id(i) => id = i,
                _ => {}
            }
        }
        let label = String::from_utf8_lossy(&label).into_owned();
        let address = match hsm::secp256k1_address(&session, public, &label) {
            Ok(address) => address,
            Err(HsmError::NotSecp256k1(_) | HsmError::BadPublicKey(_)) => continue,
            Err(err) => return Err(err.into()),
        };
        let paired = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ])
            .map_err(HsmError::from)?;
        if !paired.is_empty() {
            keys.push(KeyInfo {
                label,
                id: alloy::hex::encode(&id),
                address,
            });
        }
    }
    keys.sort_by(|a, b| (&a.label, &a.id).cmp(&(&b.label, &b.id)));
    Ok(keys)
}

/// What a key signs for a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyRole {
    /// Signs batches (the EIP-712 digest the contract checks).
    Batch,
    /// Signs and pays for the relayer's own transactions.
    Sender,
}

impl KeyRole {
    /// The value stored in `relayer.signer_keys.role`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Sender => "sender",
        }
    }

    fn parse(value: &str) -> Result<Self, KeyError> {
        match value {
            "batch" => Ok(Self::Batch),
            "sender" => Ok(Self::Sender),
            _ => Err(corrupt("role", value)),
        }
    }
}

/// Where a key is in its rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// The key that signs now.
    Active,
    /// Superseded: no longer signs, but what it signed may still be in flight.
    Retiring,
    /// Done; never active again.
    Retired,
}

impl KeyStatus {
    /// The value stored in `relayer.signer_keys.status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }

    fn parse(value: &str) -> Result<Self, KeyError> {
        match value {
            "active" => Ok(Self::Active),
            "retiring" => Ok(Self::Retiring),
            "retired" => Ok(Self::Retired),
            _ => Err(corrupt("status", value)),
        }
    }
}

impl std::fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerKey {
    /// The chain.
    pub chain_id: u64,
    /// The contract it signs for.
    pub contract: Address,
    /// What it signs.
    pub role: KeyRole,
    /// Its label on the token.
    pub label: String,
    /// Its address.
    pub address: Address,
    /// Where it is in its rotation.
    pub status: KeyStatus,
    /// When it was first activated.
    pub created_at: DateTime<Utc>,
    /// When it last became active.
    pub activated_at: DateTime<Utc>,
    /// When it was retired.
    pub retired_at: Option<DateTime<Utc>>,
}

const KEY_COLUMNS: &str =
    "chain_id, contract, role, label, address, status, created_at, activated_at, retired_at";

/// The registry of signing keys in `relayer.signer_keys`.
#[derive(Debug, Clone)]
pub struct KeyRegistry {
    pool: PgPool,
}

impl KeyRegistry {
    /// A registry on `pool` (migrated with [`crate::intake::MIGRATOR`]).
    pub const fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Makes `address` (labelled `label` on the token) the active `role` key of the contract, and
    /// moves the previously active key, returned, to retiring; one transaction.
    ///
    /// Activating the active key changes nothing and returns `None`; activating a retiring key
    /// rolls a rotation back; a retired key is refused.
    pub async fn activate(
        &self,
        chain_id: u64,
        contract: Address,
        role: KeyRole,
        label: &str,
        address: Address,
    ) -> Result<Option<Address>, KeyError> {
        let chain = chain_param(chain_id)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!(
                "relayer.signer_keys/{chain}/{contract}/{}",
                role.as_str()
            ))
            .execute(&mut *tx)
            .await?;
        let existing = sqlx::query(
            "SELECT label, status FROM relayer.signer_keys
             WHERE chain_id = $1 AND contract = $2 AND address = $3 AND role = $4",
        )
        .bind(chain)
        .bind(contract.as_slice())
        .bind(address.as_slice())
        .bind(role.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            let registered: String = row.try_get(0)?;
            if registered != label {
                return Err(KeyError::LabelMismatch {
                    address,
                    registered,
                    given: label.to_owned(),
                });
            }
            match KeyStatus::parse(&row.try_get::<String, _>(1)?)? {
                KeyStatus::Active => return Ok(None),
                KeyStatus::Retired => return Err(KeyError::Retired(address)),
                KeyStatus::Retiring => {}
            }
        }
        let previous = sqlx::query(
            "UPDATE relayer.signer_keys SET status = 'retiring'
             WHERE chain_id = $1 AND contract = $2 AND role = $3 AND status = 'active'
             RETURNING address",
        )
        .bind(chain)
        .bind(contract.as_slice())
        .bind(role.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| address_column(&row, "address"))
        .transpose()?;
        sqlx::query(
            "INSERT INTO relayer.signer_keys (chain_id, contract, role, label, address, status)
             VALUES ($1, $2, $3, $4, $5, 'active')
             ON CONFLICT (chain_id, contract, address, role)
             DO UPDATE SET status = 'active', activated_at = now()",
        )
        .bind(chain)
        .bind(contract.as_slice())
        .bind(role.as_str())
        .bind(label)
        .bind(address.as_slice())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// Moves a retiring key to retired.
    pub async fn retire(
        &self,
        chain_id: u64,
        contract: Address,
        role: KeyRole,
        address: Address,
    ) -> Result<(), KeyError> {
        let chain = chain_param(chain_id)?;
        // The update only matches a retiring key; the CTE reads the status it had either way.
        let row = sqlx::query(
            "WITH before AS (
                 SELECT status FROM relayer.signer_keys
                 WHERE chain_id = $1 AND contract = $2 AND address = $3 AND role = $4
             ), retired AS (
                 UPDATE relayer.signer_keys SET status = 'retired', retired_at = now()
                 WHERE chain_id = $1 AND contract = $2 AND address = $3 AND role = $4
                   AND status = 'retiring'
                 RETURNING 1
             )
             SELECT (SELECT status FROM before), EXISTS (SELECT 1 FROM retired)",
        )
        .bind(chain)
        .bind(contract.as_slice())
        .bind(address.as_slice())
        .bind(role.as_str())
        .fetch_one(&self.pool)
        .await?;
        let status: Option<String> = row.try_get(0)?;
        let retired: bool = row.try_get(1)?;
        match status {
            _ if retired => Ok(()),
            None => Err(KeyError::NotRegistered(address)),
            Some(status) => Err(KeyError::NotRetiring {
                address,
                status: KeyStatus::parse(&status)?,
            }),
        }
    }

    /// The active `role` key of the contract, if any.
    pub async fn active(
        &self,
        chain_id: u64,
        contract: Address,
        role: KeyRole,
    ) -> Result<Option<SignerKey>, KeyError> {
        let chain = chain_param(chain_id)?;
        sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM relayer.signer_keys
             WHERE chain_id = $1 AND contract = $2 AND role = $3 AND status = 'active'"
        ))
        .bind(chain)
        .bind(contract.as_slice())
        .bind(role.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| signer_key(&row))
        .transpose()
    }

    /// Every key of the contract, by role, then oldest first.
    pub async fn list(&self, chain_id: u64, contract: Address) -> Result<Vec<SignerKey>, KeyError> {
        let chain = chain_param(chain_id)?;
        sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM relayer.signer_keys
             WHERE chain_id = $1 AND contract = $2
             ORDER BY role, created_at, address"
        ))
        .bind(chain)
        .bind(contract.as_slice())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(signer_key)
        .collect()
    }
}

fn chain_param(chain_id: u64) -> Result<i64, KeyError> {
    i64::try_from(chain_id).map_err(|_| KeyError::ChainIdOutOfRange(chain_id))
}

fn corrupt(column: &'static str, value: impl std::fmt::Debug) -> KeyError {
    KeyError::Corrupt {
        column,
        value: format!("{value:?}"),
    }
}

fn address_column(row: &PgRow, column: &'static str) -> Result<Address, KeyError> {
    let bytes: Vec<u8> = row.try_get(column)?;
    Address::try_from(bytes.as_slice()).map_err(|_| corrupt(column, bytes))
}

fn signer_key(row: &PgRow) -> Result<SignerKey, KeyError> {
    let chain_id: i64 = row.try_get("chain_id")?;
    Ok(SignerKey {
        chain_id: u64::try_from(chain_id).map_err(|_| corrupt("chain_id", chain_id))?,
        contract: address_column(row, "contract")?,
        role: KeyRole::parse(&row.try_get::<String, _>("role")?)?,
        label: row.try_get("label")?,
        address: address_column(row, "address")?,
        status: KeyStatus::parse(&row.try_get::<String, _>("status")?)?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        retired_at: row.try_get("retired_at")?,
    })
}
