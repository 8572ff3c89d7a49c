//! The digests signers sign, built exactly as EIP-712 builds them.
//!
//! A batch digest is `keccak256(0x1901 || domainSeparator || structHash)` with
//!
//! * `domainSeparator = keccak256(abi.encode(keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"), keccak256("SplitSettlement"), keccak256("1"), chainId, verifyingContract))`,
//!   where `chainId` is the id given to the constructor and `verifyingContract` is this
//!   contract's own 20-byte (pallet-revive `H160`) address;
//! * `structHash = keccak256(abi.encode(BATCH_TYPEHASH, batchId, nonce, deadline, token, funder, funding, keccak256(payees as 32-byte words), keccak256(payments)))`.
//!
//! With the same chain id and address, this is byte for byte the EVM contract's digest
//! (the shared vectors check it). Governance operations use the same domain with the
//! type [`OPERATION_TYPE`].

use ink::{
    Address, H256, U256,
    env::hash::{HashOutput, Keccak256},
};

/// EIP-712 domain name.
pub const DOMAIN_NAME: &str = "SplitSettlement";
/// EIP-712 domain version.
pub const DOMAIN_VERSION: &str = "1";
/// The EIP-712 domain type.
pub const DOMAIN_TYPE: &str =
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
/// The EIP-712 type of a batch (the same string as `BATCH_TYPEHASH` in `SplitSettlement.sol`).
pub const BATCH_TYPE: &str = "Batch(bytes32 batchId,uint256 nonce,uint64 deadline,address token,\
address funder,uint8 funding,address[] payees,bytes payments)";
/// The EIP-712 type of a governance operation; `action` is `keccak256(SCALE(Action))`.
pub const OPERATION_TYPE: &str = "Operation(uint256 nonce,bytes32 action)";

/// Keccak-256 of `input`.
pub fn keccak256(input: &[u8]) -> [u8; 32] {
    let mut out = <Keccak256 as HashOutput>::Type::default();
    ink::env::hash_bytes::<Keccak256>(input, &mut out);
    out
}

/// An ABI word holding an unsigned integer.
pub fn uint_word(value: U256) -> [u8; 32] {
    value.to_big_endian()
}

/// An ABI word holding an address (left-padded with zeros).
pub fn address_word(address: Address) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(address.as_bytes());
    word
}

/// `keccak256` of ABI words laid end to end, which is what `abi.encode` of static values hashes.
pub fn hash_words(words: &[[u8; 32]]) -> [u8; 32] {
    keccak256(&words.concat())
}

/// The domain separator for `chain_id` and the contract at `contract`.
pub fn domain_separator(chain_id: u64, contract: Address) -> H256 {
    H256(hash_words(&[
        keccak256(DOMAIN_TYPE.as_bytes()),
        keccak256(DOMAIN_NAME.as_bytes()),
        keccak256(DOMAIN_VERSION.as_bytes()),
        uint_word(U256::from(chain_id)),
        address_word(contract),
    ]))
}

/// `keccak256(0x1901 || domain_separator || struct_hash)`.
pub fn typed_digest(domain_separator: H256, struct_hash: [u8; 32]) -> H256 {
    let mut input = [0u8; 66];
    input[..2].copy_from_slice(&[0x19, 0x01]);
    input[2..34].copy_from_slice(domain_separator.as_bytes());
    input[34..].copy_from_slice(&struct_hash);
    H256(keccak256(&input))
}

/// `keccak256` of `payees` as EIP-712 encodes an `address[]`: their 32-byte words, concatenated.
pub fn payees_hash(payees: &[Address]) -> [u8; 32] {
    let words: ink::prelude::vec::Vec<[u8; 32]> = payees.iter().map(|p| address_word(*p)).collect();
    hash_words(&words)
}

/// The struct hash of an `Operation(nonce, action)`.
pub fn operation_struct_hash(nonce: u64, action_hash: H256) -> [u8; 32] {
    hash_words(&[
        keccak256(OPERATION_TYPE.as_bytes()),
        uint_word(U256::from(nonce)),
        action_hash.0,
    ])
}
