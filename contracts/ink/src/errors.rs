//! The one error type of the contract.

use ink::{Address, U256};

/// Why a message was refused. On chain, returning any of these reverts the call.
///
/// Variants mirror the custom errors of `ISplitSettlement.sol` and `SettleMultisig.sol`
/// where the two contracts share a rule; the rest are specific to this contract.
#[ink::error]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    // ------------------------------------------------------------ settlement
    /// The batch's deadline (seconds) has passed.
    BatchExpired {
        /// The batch's deadline.
        deadline: u64,
        /// The block timestamp (seconds).
        now: u64,
    },
    /// The signature is malformed (`v` not 27/28, `r` or `s` out of range) or recovers nothing.
    InvalidSignature,
    /// The signature's `s` is in the upper half of the curve order (malleable).
    InvalidSignatureS,
    /// The recovered signer is not an authorised batch signer.
    UnauthorizedSigner(Address),
    /// The signer's nonce was already used or invalidated.
    NonceAlreadyUsed {
        /// The signer.
        signer: Address,
        /// The nonce.
        nonce: U256,
    },
    /// The token is not enabled for settlement or deposits.
    TokenNotEnabled(Address),
    /// The packed payments end in the middle of this payment.
    MalformedPayments {
        /// Index of the payment.
        payment: u32,
    },
    /// The batch has no payments.
    EmptyBatch,
    /// A payment has no legs.
    EmptySplit {
        /// Index of the payment.
        payment: u32,
    },
    /// A payment's amount is zero.
    ZeroAmount {
        /// Index of the payment.
        payment: u32,
    },
    /// A payment exceeds the token's maximum single payment.
    PaymentTooLarge {
        /// Index of the payment.
        payment: u32,
        /// Its amount.
        amount: u128,
        /// The token's maximum.
        max: u128,
    },
    /// A payment's shares do not sum to the scale (1,000,000).
    SharesMismatch {
        /// Index of the payment.
        payment: u32,
        /// What the shares sum to.
        sum: u64,
    },
    /// A leg has a zero share.
    ZeroShare {
        /// Index of the payment.
        payment: u32,
        /// Index of the leg.
        leg: u32,
    },
    /// A leg refers to a payee index outside `Batch::payees`.
    UnknownPayee {
        /// Index of the payment.
        payment: u32,
        /// Index of the leg.
        leg: u32,
    },
    /// A payee is the zero address.
    ZeroPayee {
        /// Index in `Batch::payees`.
        index: u32,
    },
    /// `Batch::payees` is not strictly ascending (unsorted or duplicated).
    PayeesNotSorted {
        /// Index in `Batch::payees`.
        index: u32,
    },
    /// Settling would exceed the token's daily cap.
    DailyCapExceeded {
        /// The token.
        token: Address,
        /// The batch total.
        requested: u128,
        /// What is left of today's cap.
        remaining: u128,
    },
    /// An account's internal balance is too low.
    InsufficientBalance {
        /// The token.
        token: Address,
        /// The account.
        account: Address,
        /// What was needed.
        needed: u128,
        /// What it has.
        available: u128,
    },
    /// The value sent with the call does not match what the call needs.
    WrongValue {
        /// What the call needs.
        expected: u128,
        /// What was sent.
        sent: U256,
    },
    /// The batch's funding mode is unknown.
    InvalidFunding(u8),
    /// Pull funding of a non-native token: this contract cannot pull tokens (see README).
    PullNotSupported(Address),
    /// A sum of amounts does not fit in `u128` (a batch total, a balance, or a value sent).
    AmountOverflow,
    /// A zero address where an account is required.
    ZeroAddress,
    /// An amount of zero where a positive amount is required.
    ZeroValue,
    /// Sending the native coin failed.
    NativeTransferFailed {
        /// The recipient.
        to: Address,
        /// The amount.
        amount: u128,
    },
    /// The caller lacks the role the message needs (guardian, owner or custodian).
    Unauthorized(Address),
    /// Settlement, deposits and withdrawals are paused.
    Paused,
    /// The contract is not paused.
    NotPaused,

    // ------------------------------------------------------------ governance
    /// Fewer owner signatures than the threshold.
    ThresholdNotMet {
        /// Signatures given.
        got: u32,
        /// The threshold.
        needed: u32,
    },
    /// A governance signature does not recover to an owner.
    SignerNotOwner {
        /// Index of the signature.
        index: u32,
        /// Who it recovers to.
        signer: Address,
    },
    /// Governance signers are not strictly ascending (so no owner counts twice).
    SignersNotAscending {
        /// Index of the signature.
        index: u32,
    },
    /// An owner set is empty, has a zero address, or is not strictly ascending.
    InvalidOwners {
        /// Index of the offending owner (0 for an empty set).
        index: u32,
    },
    /// The threshold is zero or larger than the owner count.
    InvalidThreshold {
        /// The threshold asked for.
        threshold: u32,
        /// The owner count.
        owners: u32,
    },
    /// The timelock delay is above the maximum.
    InvalidDelay(u64),
    /// No scheduled operation has this nonce (never scheduled, executed or cancelled).
    UnknownOperation(u64),
    /// The operation's delay has not passed yet.
    OperationNotReady {
        /// When it becomes executable (seconds).
        eta: u64,
        /// The block timestamp (seconds).
        now: u64,
    },
    /// `set_code_hash` failed (the code hash is not uploaded).
    UpgradeFailed,
}

/// The result of every fallible message.
pub type Result<T> = core::result::Result<T, Error>;
