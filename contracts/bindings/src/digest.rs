//! The EIP-712 digest of a batch, as `SplitSettlement.batchDigest` computes it.

use alloy::{
    primitives::{Address, B256},
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};

use crate::Batch;

/// EIP-712 domain name of the settlement contract.
pub const DOMAIN_NAME: &str = "SplitSettlement";
/// EIP-712 domain version of the settlement contract.
pub const DOMAIN_VERSION: &str = "1";

/// The EIP-712 domain of the settlement contract at `contract` on `chain_id`.
pub fn domain(chain_id: u64, contract: Address) -> Eip712Domain {
    eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: contract,
    }
}

/// The digest an authorised signer signs for `batch` on `chain_id` at `contract`.
pub fn batch_digest(batch: &Batch, chain_id: u64, contract: Address) -> B256 {
    batch.eip712_signing_hash(&domain(chain_id, contract))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_string_matches_the_contract() {
        // The exact string hashed into BATCH_TYPEHASH in SplitSettlement.sol.
        assert_eq!(
            Batch::eip712_encode_type(),
            "Batch(bytes32 batchId,uint256 nonce,uint64 deadline,address token,address funder,uint8 funding,\
             address[] payees,bytes payments)"
        );
    }
}
