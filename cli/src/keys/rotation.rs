//! `settle keys rotate | retire | registry`: which key signs for a contract, kept in the
//! relayer's key registry (`relayer.signer_keys`).
//!
//! The commands drive the relayer's library and decide nothing themselves: the registry's rules
//! (one active key per role, retired is final) and the conditions for retiring a batch key
//! (nothing in flight, no longer authorised by the contract) are the relayer's. The chain is
//! never written to: authorising and removing a key on the contract is governance's step, and
//! `rotate` says so.

use std::fmt::Write as _;

use alloy::{primitives::Address, providers::Provider};
use clap::{Args, ValueEnum};
use settle_relayer::{
    intake::MIGRATOR,
    keys::{KeyError, KeyRegistry, KeyRole, SignerKey},
    rpc::{RpcConfig, RpcPool},
    service::{RotationError, retire_batch_key},
};
use sqlx::types::chrono::{DateTime, Utc};

use super::{DATABASE_URL_ENV, Hsm, KeysError, TokenArgs, connect, parse_address};
use crate::dev::redact;

/// Which contract's keys: the relayer's database, the chain and the contract.
#[derive(Debug, Clone, Args)]
pub struct ContractArgs {
    /// Postgres connection URL of the relayer's database.
    #[arg(long, env = DATABASE_URL_ENV, hide_env_values = true, value_name = "URL")]
    pub database_url: String,
    /// Chain id of the contract.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub chain_id: u64,
    /// Address of the settlement contract (its proxy); EIP-55 checksummed if in mixed case.
    #[arg(long, value_name = "0x..")]
    pub contract: String,
}

impl ContractArgs {
    /// The contract the flags name, its address checked.
    pub fn target(&self) -> Result<Contract, KeysError> {
        Ok(Contract {
            chain_id: self.chain_id,
            address: parse_address("--contract", &self.contract)?,
        })
    }
}

/// A contract on a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contract {
    /// The chain.
    pub chain_id: u64,
    /// The contract's address.
    pub address: Address,
}

/// What a key signs, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Batches, whose signatures the contract checks.
    Batch,
    /// The relayer's own transactions, whose gas it pays.
    Sender,
}

impl From<Role> for KeyRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Batch => Self::Batch,
            Role::Sender => Self::Sender,
        }
    }
}

/// Options of `settle keys rotate`.
#[derive(Debug, Clone, Args)]
pub struct RotateArgs {
    /// The contract.
    #[command(flatten)]
    pub contract: ContractArgs,
    /// The token holding the key (user PIN from SETTLE_HSM_PIN).
    #[command(flatten)]
    pub token: TokenArgs,
    /// Label of the key on the token (see `settle keys create`).
    #[arg(long, value_name = "KEY")]
    pub label: String,
    /// What the key signs.
    #[arg(long, value_enum, default_value_t = Role::Batch)]
    pub role: Role,
}

/// Options of `settle keys retire`.
#[derive(Debug, Clone, Args)]
pub struct RetireArgs {
    /// The contract.
    #[command(flatten)]
    pub contract: ContractArgs,
    /// JSON-RPC endpoint of the contract's chain, asked whether the contract still authorises the key.
    #[arg(long, value_name = "URL")]
    pub rpc: String,
    /// The retiring batch key; EIP-55 checksummed if in mixed case.
    #[arg(long, value_name = "0x..")]
    pub address: String,
}

/// A key as the registry knows it: its label and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedKey {
    /// Its label on the token.
    pub label: String,
    /// Its address.
    pub address: Address,
}

/// What `settle keys rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The contract.
    pub contract: Contract,
    /// The role rotated.
    pub role: KeyRole,
    /// The key active now.
    pub active: NamedKey,
    /// The key that was active before and is retiring now; `None` if no key was active or
    /// nothing changed.
    pub retiring: Option<NamedKey>,
    /// The key was active already; the registry is as it was.
    pub unchanged: bool,
}

impl Rotation {
    /// What `settle keys rotate` prints: the active key, the retiring key and the next step, a
    /// line each (one line if nothing changed).
    pub fn render(&self) -> String {
        let role = self.role.as_str();
        let Contract { chain_id, address } = self.contract;
        let NamedKey {
            label,
            address: new,
        } = &self.active;
        if self.unchanged {
            return format!(
                "{label:?} {new} is already the active {role} key of {address} on chain {chain_id}; nothing changed\n"
            );
        }
        let mut out =
            format!("active {role} key of {address} on chain {chain_id}: {label:?} {new}\n");
        match &self.retiring {
            Some(old) => {
                let _ = writeln!(out, "retiring: {:?} {}", old.label, old.address);
            }
            None => {
                let _ = writeln!(out, "retiring: none (no {role} key was active)");
            }
        }
        out.push_str("next: ");
        match (self.role, &self.retiring) {
            (KeyRole::Batch, retiring) => {
                let _ = write!(
                    out,
                    "the contract must authorise {new} through governance (setSigner({new}, true)) \
                     before batches signed by it can settle"
                );
                if let Some(old) = retiring {
                    let _ = write!(
                        out,
                        "; later, once governance has removed {old} (setSigner({old}, false)), run \
                         `settle keys retire --chain-id {chain_id} --contract {address} --rpc URL --address {old}`",
                        old = old.address
                    );
                }
            }
            (KeyRole::Sender, _) => {
                let _ = write!(
                    out,
                    "fund {new} with the native coin for gas before the relayer sends from it \
                     (a sender key needs no authorisation on the contract)"
                );
            }
        }
        out.push('\n');
        out
    }
}

/// What `settle keys retire` retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retired {
    /// The contract.
    pub contract: Contract,
    /// The key, now retired.
    pub address: Address,
}

/// Makes the key labelled `args.label` on the token the active key of the contract, after
/// applying the relayer's migrations.
///
/// Everything the flags say is checked (address, PIN, key on the token) before the database is
/// touched.
pub async fn rotate(args: &RotateArgs, pin: Option<String>) -> Result<Rotation, KeysError> {
    let contract = args.contract.target()?;
    let role = KeyRole::from(args.role);
    let address = Hsm::open(&args.token, pin)?.address_of(&args.label)?;
    let pool = connect(&args.contract.database_url).await?;
    let rotated = async {
        MIGRATOR.run(&pool).await.map_err(KeysError::Migrate)?;
        let registry = KeyRegistry::new(pool.clone());
        let before = registry
            .active(contract.chain_id, contract.address, role)
            .await?;
        let previous = registry
            .activate(
                contract.chain_id,
                contract.address,
                role,
                &args.label,
                address,
            )
            .await?;
        let keys = registry.list(contract.chain_id, contract.address).await?;
        let named = |address: Address| {
            keys.iter()
                .find(|k| k.role == role && k.address == address)
                .map(|k| NamedKey {
                    label: k.label.clone(),
                    address,
                })
        };
        Ok::<_, KeysError>(Rotation {
            contract,
            role,
            active: NamedKey {
                label: args.label.clone(),
                address,
            },
            retiring: previous.and_then(named),
            unchanged: previous.is_none() && before.is_some_and(|k| k.address == address),
        })
    }
    .await;
    pool.close().await;
    rotated
}

/// Retires the retiring batch key `args.address` through the relayer's
/// [`retire_batch_key`], after checking that `--rpc` serves `--chain-id`.
pub async fn retire(args: &RetireArgs) -> Result<Retired, KeysError> {
    let contract = args.contract.target()?;
    let old = parse_address("--address", &args.address)?;
    let rpc = RpcPool::new(std::slice::from_ref(&args.rpc), RpcConfig::default())?;
    // Another chain would answer `isSigner` for some other contract, or for none.
    let served = rpc
        .call("eth_chainId", |p| async move { p.get_chain_id().await })
        .await?;
    if served != contract.chain_id {
        return Err(KeysError::WrongChain {
            expected: contract.chain_id,
            served,
        });
    }
    let url = &args.contract.database_url;
    let pool = connect(url).await?;
    let retired = retire_batch_key(&pool, &rpc, contract.chain_id, contract.address, old).await;
    pool.close().await;
    match retired {
        Ok(()) => Ok(Retired {
            contract,
            address: old,
        }),
        Err(RotationError::Database(ref e) | RotationError::Keys(KeyError::Database(ref e)))
            if is_undefined_table(e) =>
        {
            Err(KeysError::NoRegistry(redact(url)))
        }
        Err(e) => Err(e.into()),
    }
}

/// The contract's keys in the registry, by role, oldest first.
pub async fn registry(args: &ContractArgs) -> Result<(Contract, Vec<SignerKey>), KeysError> {
    let contract = args.target()?;
    let pool = connect(&args.database_url).await?;
    let keys = KeyRegistry::new(pool.clone())
        .list(contract.chain_id, contract.address)
        .await;
    pool.close().await;
    match keys {
        Ok(keys) => Ok((contract, keys)),
        Err(KeyError::Database(ref e)) if is_undefined_table(e) => {
            Err(KeysError::NoRegistry(redact(&args.database_url)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether Postgres said a table does not exist (SQLSTATE 42P01): the relayer never migrated it.
fn is_undefined_table(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01"))
}

/// RFC 3339 in UTC to the second: one token, so the table splits on whitespace.
fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The table `settle keys registry` prints; `-` for a key not retired.
pub fn render_registry(contract: &Contract, keys: &[SignerKey]) -> String {
    if keys.is_empty() {
        return format!(
            "no keys registered for {} on chain {}\n",
            contract.address, contract.chain_id
        );
    }
    let rows: Vec<[String; 6]> = keys
        .iter()
        .map(|k| {
            [
                k.role.as_str().to_owned(),
                k.status.as_str().to_owned(),
                k.label.clone(),
                k.address.to_string(),
                timestamp(k.activated_at),
                k.retired_at.map_or_else(|| "-".to_owned(), timestamp),
            ]
        })
        .collect();
    let header = ["ROLE", "STATUS", "LABEL", "ADDRESS", "ACTIVATED", "RETIRED"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6]| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use settle_relayer::keys::KeyStatus;
    use sqlx::types::chrono::TimeZone;

    use super::*;

    const CONTRACT: Contract = Contract {
        chain_id: 31337,
        address: Address::repeat_byte(0xcc),
    };

    fn key(label: &str, byte: u8) -> NamedKey {
        NamedKey {
            label: label.into(),
            address: Address::repeat_byte(byte),
        }
    }

    #[test]
    fn a_batch_rotation_names_both_governance_steps() {
        let rotation = Rotation {
            contract: CONTRACT,
            role: KeyRole::Batch,
            active: key("b", 0xbb),
            retiring: Some(key("a", 0xaa)),
            unchanged: false,
        };
        let (a, b, c) = (
            Address::repeat_byte(0xaa),
            Address::repeat_byte(0xbb),
            CONTRACT.address,
        );
        assert_eq!(
            rotation.render(),
            format!(
                "active batch key of {c} on chain 31337: \"b\" {b}\n\
                 retiring: \"a\" {a}\n\
                 next: the contract must authorise {b} through governance (setSigner({b}, true)) \
                 before batches signed by it can settle; later, once governance has removed {a} \
                 (setSigner({a}, false)), run `settle keys retire --chain-id 31337 --contract {c} \
                 --rpc URL --address {a}`\n"
            )
        );
    }

    #[test]
    fn first_sender_and_repeated_rotations_say_so() {
        let b = Address::repeat_byte(0xbb);
        let c = CONTRACT.address;
        let first = Rotation {
            contract: CONTRACT,
            role: KeyRole::Sender,
            active: key("b", 0xbb),
            retiring: None,
            unchanged: false,
        };
        assert_eq!(
            first.render(),
            format!(
                "active sender key of {c} on chain 31337: \"b\" {b}\n\
                 retiring: none (no sender key was active)\n\
                 next: fund {b} with the native coin for gas before the relayer sends from it \
                 (a sender key needs no authorisation on the contract)\n"
            )
        );
        let again = Rotation {
            unchanged: true,
            role: KeyRole::Batch,
            ..first
        };
        assert_eq!(
            again.render(),
            format!(
                "\"b\" {b} is already the active batch key of {c} on chain 31337; nothing changed\n"
            )
        );
    }

    #[test]
    fn the_registry_is_a_table() {
        let at = |s| {
            Utc.timestamp_opt(1_750_000_000_i64.saturating_add(s), 0)
                .single()
                .expect("a time")
        };
        let row = |label: &str, byte, status, retired_at| SignerKey {
            chain_id: CONTRACT.chain_id,
            contract: CONTRACT.address,
            role: KeyRole::Batch,
            label: label.into(),
            address: Address::repeat_byte(byte),
            status,
            created_at: at(0),
            activated_at: at(1),
            retired_at,
        };
        let keys = [
            row("old-key", 0xaa, KeyStatus::Retired, Some(at(2))),
            row("b", 0xbb, KeyStatus::Active, None),
        ];
        assert_eq!(
            render_registry(&CONTRACT, &keys),
            format!(
                "ROLE   STATUS   LABEL    ADDRESS{pad}  ACTIVATED             RETIRED\n\
                 batch  retired  old-key  {a}  2025-06-15T15:06:41Z  2025-06-15T15:06:42Z\n\
                 batch  active   b        {b}  2025-06-15T15:06:41Z  -\n",
                pad = " ".repeat(35),
                a = Address::repeat_byte(0xaa),
                b = Address::repeat_byte(0xbb),
            )
        );
        assert_eq!(
            render_registry(&CONTRACT, &[]),
            format!(
                "no keys registered for {} on chain 31337\n",
                CONTRACT.address
            )
        );
    }
}
