//! Owner approvals for `SettleMultisig` and the timelock calls they carry.
//!
//! An owner approves an operation by signing the EIP-712 digest of
//! `Operation(address target,uint256 value,bytes data,uint256 nonce)` in the
//! domain `SettleMultisig`/`1`/chain id/multisig. `execute` wants the
//! signatures ordered by signer address, ascending, which is how
//! [`sign_operation`] returns them. Changes to the settlement reach it as
//! timelock `schedule` and, after the delay, `execute` calls
//! ([`TimelockCall`]), each approved as one multisig operation.

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    signers::Signer,
    sol,
    sol_types::{Eip712Domain, SolCall, SolStruct, SolValue, eip712_domain},
};
use settle_contracts::TimelockController;
use thiserror::Error;

/// EIP-712 domain name of the multisig.
pub const DOMAIN_NAME: &str = "SettleMultisig";
/// EIP-712 domain version of the multisig.
pub const DOMAIN_VERSION: &str = "1";

sol! {
    /// One call the owners approve: what `SettleMultisig.execute` checks signatures over.
    #[derive(Debug, PartialEq, Eq)]
    struct Operation {
        /// The address called.
        address target;
        /// The wei sent.
        uint256 value;
        /// The calldata (hashed into the struct).
        bytes data;
        /// The multisig nonce the approval is bound to.
        uint256 nonce;
    }
}

/// Why owners' approvals could not be made.
#[derive(Debug, Error)]
pub enum ApprovalError {
    /// A signer refused or failed.
    #[error("owner {owner} could not sign the operation: {source}")]
    Sign {
        /// The owner's address.
        owner: Address,
        /// The signer's failure.
        source: alloy::signers::Error,
    },
    /// A signature does not recover to its signer (a faulty remote signer).
    #[error("the signature of owner {owner} recovers to {recovered}; check that signer")]
    WrongSigner {
        /// The owner the signer claims to be.
        owner: Address,
        /// Whom the signature recovers to.
        recovered: Address,
    },
    /// The same owner signs twice; the multisig would reject the approvals.
    #[error("owner {0} is given twice; each owner signs once")]
    Duplicate(Address),
}

/// The multisig's EIP-712 domain at `multisig` on `chain_id`.
pub fn domain(chain_id: u64, multisig: Address) -> Eip712Domain {
    eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: multisig,
    }
}

/// The digest owners sign to approve `operation` (equal to the contract's `operationDigest`).
pub fn operation_digest(operation: &Operation, chain_id: u64, multisig: Address) -> B256 {
    operation.eip712_signing_hash(&domain(chain_id, multisig))
}

/// Signs `operation` with every owner and returns the 65-byte `r ‖ s ‖ v` signatures sorted by
/// owner address, ascending, as `SettleMultisig.execute` takes them. Each signature is checked to
/// recover to its signer.
pub async fn sign_operation(
    owners: &[&(dyn Signer + Send + Sync)],
    operation: &Operation,
    chain_id: u64,
    multisig: Address,
) -> Result<Vec<Bytes>, ApprovalError> {
    let digest = operation_digest(operation, chain_id, multisig);
    let mut signed: Vec<(Address, Bytes)> = Vec::with_capacity(owners.len());
    for owner in owners {
        let address = owner.address();
        if signed.iter().any(|(a, _)| *a == address) {
            return Err(ApprovalError::Duplicate(address));
        }
        let signature = owner
            .sign_hash(&digest)
            .await
            .map_err(|source| ApprovalError::Sign {
                owner: address,
                source,
            })?;
        let recovered = signature
            .recover_address_from_prehash(&digest)
            .unwrap_or(Address::ZERO);
        if recovered != address {
            return Err(ApprovalError::WrongSigner {
                owner: address,
                recovered,
            });
        }
        signed.push((address, Bytes::from(signature.as_bytes())));
    }
    signed.sort_by_key(|(address, _)| *address);
    Ok(signed.into_iter().map(|(_, sig)| sig).collect())
}

/// A call the timelock makes once scheduled and ready: the arguments of its `schedule` and
/// `execute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelockCall {
    /// The address the timelock calls (the settlement proxy).
    pub target: Address,
    /// The wei it sends.
    pub value: U256,
    /// The calldata.
    pub data: Bytes,
    /// An operation that must be done first, or zero.
    pub predecessor: B256,
    /// Tells apart otherwise identical operations.
    pub salt: B256,
}

impl TimelockCall {
    /// A call of `target` with `data`, no value, no predecessor.
    pub fn new(target: Address, data: impl Into<Bytes>, salt: B256) -> Self {
        Self {
            target,
            value: U256::ZERO,
            data: data.into(),
            predecessor: B256::ZERO,
            salt,
        }
    }

    /// The timelock's id of the operation (its `hashOperation`).
    pub fn id(&self) -> B256 {
        keccak256(
            (
                self.target,
                self.value,
                self.data.clone(),
                self.predecessor,
                self.salt,
            )
                .abi_encode_params(),
        )
    }

    /// The multisig operation that schedules this call on `timelock`, ready after `delay` seconds.
    pub fn schedule(&self, timelock: Address, delay: u64, nonce: U256) -> Operation {
        let data = TimelockController::scheduleCall {
            target: self.target,
            value: self.value,
            data: self.data.clone(),
            predecessor: self.predecessor,
            salt: self.salt,
            delay: U256::from(delay),
        }
        .abi_encode();
        Operation {
            target: timelock,
            value: U256::ZERO,
            data: data.into(),
            nonce,
        }
    }

    /// The multisig operation that executes this call on `timelock` once it is ready.
    pub fn execute(&self, timelock: Address, nonce: U256) -> Operation {
        let data = TimelockController::executeCall {
            target: self.target,
            value: self.value,
            payload: self.data.clone(),
            predecessor: self.predecessor,
            salt: self.salt,
        }
        .abi_encode();
        Operation {
            target: timelock,
            value: U256::ZERO,
            data: data.into(),
            nonce,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::{primitives::address, signers::local::PrivateKeySigner};

    #[test]
    fn type_string_matches_the_contract() {
        assert_eq!(
            Operation::eip712_encode_type(),
            "Operation(address target,uint256 value,bytes data,uint256 nonce)"
        );
    }

    fn key(byte: u8) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(byte)).expect("valid key")
    }

    fn operation() -> Operation {
        Operation {
            target: address!("0x00000000000000000000000000000000000000aa"),
            value: U256::from(5),
            data: Bytes::from_static(b"\x12\x34"),
            nonce: U256::from(9),
        }
    }

    #[tokio::test]
    async fn signatures_are_sorted_by_owner_and_recover() {
        let (a, b, c) = (key(1), key(2), key(3));
        let multisig = address!("0x00000000000000000000000000000000000000bb");
        let signed = sign_operation(&[&c, &a, &b], &operation(), 31337, multisig)
            .await
            .expect("signed");
        let digest = operation_digest(&operation(), 31337, multisig);
        let recovered: Vec<Address> = signed
            .iter()
            .map(|sig| {
                alloy::primitives::Signature::from_raw(sig)
                    .expect("65 bytes")
                    .recover_address_from_prehash(&digest)
                    .expect("recovers")
            })
            .collect();
        let mut expected = vec![a.address(), b.address(), c.address()];
        expected.sort();
        assert_eq!(recovered, expected);
        assert!(signed.iter().all(|sig| sig.len() == 65 && sig[64] >= 27));
    }

    #[tokio::test]
    async fn an_owner_signing_twice_is_refused() {
        let a = key(1);
        let err = sign_operation(&[&a, &a], &operation(), 1, Address::ZERO)
            .await
            .expect_err("duplicate");
        assert!(matches!(err, ApprovalError::Duplicate(owner) if owner == a.address()));
    }

    #[test]
    fn the_digest_binds_chain_and_multisig() {
        let op = operation();
        let here = operation_digest(&op, 1, Address::ZERO);
        assert_ne!(here, operation_digest(&op, 2, Address::ZERO));
        assert_ne!(here, operation_digest(&op, 1, Address::repeat_byte(1)));
    }
}
