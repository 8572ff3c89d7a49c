//! The language every part of settle speaks about the contracts.
//!
//! This crate owns the Rust view of the on-chain contracts: `sol!` bindings
//! generated from the committed Foundry artifacts (`contracts/artifacts`), the
//! typed batch/payment/leg structures, the EIP-712 digest a signer signs, and
//! the split arithmetic mirrored exactly from `SplitMath.sol`.
//!
//! It must never hold keys, talk to a database or decide policy: it only
//! describes and computes. Anything it computes must equal, byte for byte, what
//! the contract computes (checked by the shared test vectors and by tests
//! against the contract on anvil).

pub mod digest;
pub mod payment;
pub mod split;

#[allow(missing_docs, clippy::too_many_arguments)] // generated from the contracts' ABI, documented by their NatSpec
mod generated {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        SplitSettlement,
        "../artifacts/SplitSettlement.json"
    );
    alloy::sol!(
        #[sol(rpc, all_derives)]
        SettleMultisig,
        "../artifacts/SettleMultisig.json"
    );
    alloy::sol!(
        #[sol(rpc, all_derives)]
        ERC1967Proxy,
        "../artifacts/ERC1967Proxy.json"
    );
    alloy::sol!(
        #[sol(rpc, all_derives)]
        TimelockController,
        "../artifacts/TimelockController.json"
    );
}

pub use generated::{
    ERC1967Proxy, ISplitSettlement, SettleMultisig, SplitSettlement, TimelockController,
};
pub use payment::{Leg, Payment, PaymentError, batch_credits, decode_payments, encode_payments};

/// A batch as the contract takes it (`payments` packed, see [`payment`]).
pub type Batch = ISplitSettlement::Batch;
