//! `SplitSettlement` for pallet-revive, written in ink! 6.
//!
//! This crate owns the ink! counterpart of `contracts/src/SplitSettlement.sol`: signed batches
//! of split payments, verified with `ecdsa_recover` against an authorised signer set over the
//! same EIP-712 digest ([`eip712`]), unordered per-signer replay nonces, deadlines, the same
//! packed payments and rounding rule ([`payments`]), per-token limits, pull balances, a
//! guardian pause, and upgrades and settings changed only through M-of-N owner signatures
//! behind a timelock ([`split_settlement::Action`]).
//!
//! It must never move funds it does not hold in its internal ledger: for every token, the sum
//! of internal balances equals [`split_settlement::SplitSettlement::held`], and for the native
//! coin that is what the contract's account holds on top of its starting balance.
#![cfg_attr(not(feature = "std"), no_std, no_main)]

pub mod eip712;
pub mod errors;
pub mod payments;

pub use errors::{Error, Result};
pub use payments::{Batch, FUNDING_DEPOSIT, FUNDING_PULL, NATIVE, SCALE};

#[cfg(test)]
mod tests;

/// The contract.
#[allow(missing_docs)] // ink! generates undocumented environment aliases here; our items are documented
#[ink::contract]
pub mod split_settlement {
    use ink::{H256, U256, prelude::vec::Vec, storage::Mapping};

    use crate::{
        eip712::{self, keccak256},
        errors::{Error, Result},
        payments::{Batch, FUNDING_DEPOSIT, FUNDING_PULL, NATIVE, tally},
    };

    /// Longest timelock delay governance may set (30 days), so it can never lock itself out.
    pub const MAX_DELAY: u64 = 30 * 86_400;
    /// Seconds in a day, for the daily cap (block timestamps are in seconds on pallet-revive).
    const DAY: u64 = 86_400;
    /// secp256k1 group order `n`, big-endian.
    const SECP256K1_N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];
    /// `n / 2`, big-endian: the largest accepted `s` (as OpenZeppelin's ECDSA).
    const SECP256K1_HALF_N: [u8; 32] = [
        0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b,
        0x20, 0xa0,
    ];

    /// Per-token limits; `enabled` gates settlement and deposits (never withdrawals).
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct TokenConfig {
        /// Largest single payment.
        pub max_payment: u128,
        /// Most that may settle per UTC day (`timestamp / 86400`).
        pub daily_cap: u128,
        /// Settled so far on `day`.
        pub spent_today: u128,
        /// The day `spent_today` counts.
        pub day: u64,
        /// Whether settlement and deposits are allowed.
        pub enabled: bool,
    }

    /// A change only M-of-N owners may make, after the timelock delay.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Action {
        /// Replace this contract's code (`set_code_hash`); storage is kept.
        SetCodeHash(H256),
        /// Replace the owner set (strictly ascending, non-zero) and the threshold.
        SetOwners {
            /// The new owners.
            owners: Vec<Address>,
            /// Signatures needed, in `1..=owners.len()`.
            threshold: u32,
        },
        /// Set the timelock delay (seconds, at most [`MAX_DELAY`]).
        SetDelay(u64),
        /// Authorise or remove a batch signer.
        SetSigner {
            /// The signer's address.
            signer: Address,
            /// Whether it may sign batches.
            authorised: bool,
        },
        /// Set a token's limits ([`NATIVE`] is the native coin).
        SetTokenConfig {
            /// The token.
            token: Address,
            /// Whether settlement and deposits are allowed.
            enabled: bool,
            /// Largest single payment.
            max_payment: u128,
            /// Daily cap.
            daily_cap: u128,
        },
        /// Set the guardian, who may pause at once and cancel scheduled operations.
        SetGuardian(Address),
        /// Set the custodian, the only account that may credit deposits of non-native tokens.
        SetCustodian(Address),
        /// Lift a pause.
        Unpause,
    }

    /// A scheduled governance operation.
    #[ink::scale_derive(Encode, Decode, TypeInfo)]
    #[cfg_attr(feature = "std", derive(ink::storage::traits::StorageLayout))]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Operation {
        /// What it does.
        pub action: Action,
        /// When it may execute (seconds).
        pub eta: u64,
    }

    /// The contract's state.
    #[ink(storage)]
    pub struct SplitSettlement {
        chain_id: u64,
        signers: Mapping<Address, ()>,
        /// `(signer, nonce >> 8)` to a 256-bit word of used nonces.
        nonce_bitmap: Mapping<(Address, U256), U256>,
        tokens: Mapping<Address, TokenConfig>,
        /// `(token, account)` to the account's internal balance.
        balances: Mapping<(Address, Address), u128>,
        /// Per token, the sum of all internal balances.
        held: Mapping<Address, u128>,
        guardian: Address,
        custodian: Address,
        paused: bool,
        /// Strictly ascending.
        owners: Vec<Address>,
        threshold: u32,
        delay: u64,
        governance_nonce: u64,
        operations: Mapping<u64, Operation>,
    }

    // ------------------------------------------------------------------ events

    /// A batch settled: `total` was drawn from `funder` and credited to the payees.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct BatchSettled {
        /// The batch's id.
        #[ink(topic)]
        pub batch_id: H256,
        /// Who signed it.
        #[ink(topic)]
        pub signer: Address,
        /// The token.
        #[ink(topic)]
        pub token: Address,
        /// The EIP-712 digest that was signed.
        pub digest: H256,
        /// Who paid.
        pub funder: Address,
        /// How ([`FUNDING_DEPOSIT`] or [`FUNDING_PULL`]).
        pub funding: u8,
        /// The signer's nonce it used.
        pub nonce: U256,
        /// The sum of its payments.
        pub total: u128,
        /// The signed packed payments, as in `Batch::payments`.
        pub payments: Vec<u8>,
        /// Every payee in order with what the batch credited it (zero included).
        pub credits: Vec<(Address, u128)>,
    }

    /// Funds were deposited into a funder's balance.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Deposited {
        /// The token.
        #[ink(topic)]
        pub token: Address,
        /// Whose balance was credited.
        #[ink(topic)]
        pub funder: Address,
        /// Who deposited.
        #[ink(topic)]
        pub from: Address,
        /// How much.
        pub amount: u128,
    }

    /// An account withdrew from its balance.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Withdrawn {
        /// The token.
        #[ink(topic)]
        pub token: Address,
        /// Whose balance was debited.
        #[ink(topic)]
        pub account: Address,
        /// Where the funds go (for non-native tokens, the custodian pays out off-chain).
        pub to: Address,
        /// How much.
        pub amount: u128,
    }

    /// A signer invalidated one of its nonces.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct NonceInvalidated {
        /// The signer.
        #[ink(topic)]
        pub signer: Address,
        /// The nonce.
        pub nonce: U256,
    }

    /// Settlement, deposits and withdrawals were paused.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Paused {
        /// Who paused.
        #[ink(topic)]
        pub by: Address,
    }

    /// A pause was lifted.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Unpaused {}

    /// A signer was authorised or removed.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SignerSet {
        /// The signer.
        #[ink(topic)]
        pub signer: Address,
        /// Whether it may sign.
        pub authorised: bool,
    }

    /// A token's limits changed.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TokenConfigured {
        /// The token.
        #[ink(topic)]
        pub token: Address,
        /// Whether settlement and deposits are allowed.
        pub enabled: bool,
        /// Largest single payment.
        pub max_payment: u128,
        /// Daily cap.
        pub daily_cap: u128,
    }

    /// The guardian changed.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct GuardianSet {
        /// The new guardian (zero: none).
        #[ink(topic)]
        pub guardian: Address,
    }

    /// The custodian changed.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CustodianSet {
        /// The new custodian (zero: none).
        #[ink(topic)]
        pub custodian: Address,
    }

    /// The owner set or threshold changed.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OwnersSet {
        /// The owners, ascending.
        pub owners: Vec<Address>,
        /// Signatures needed.
        pub threshold: u32,
    }

    /// The timelock delay changed.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct DelaySet {
        /// The new delay (seconds).
        pub delay: u64,
    }

    /// The contract's code was replaced.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Upgraded {
        /// The new code hash.
        #[ink(topic)]
        pub code_hash: H256,
    }

    /// Owners approved an operation; it may execute from `eta`.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OperationScheduled {
        /// Its governance nonce.
        #[ink(topic)]
        pub nonce: u64,
        /// `keccak256(SCALE(action))`, what the owners signed.
        pub action_hash: H256,
        /// What it does.
        pub action: Action,
        /// When it may execute.
        pub eta: u64,
    }

    /// A scheduled operation was executed.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OperationExecuted {
        /// Its governance nonce.
        #[ink(topic)]
        pub nonce: u64,
    }

    /// A scheduled operation was cancelled.
    #[ink(event)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OperationCancelled {
        /// Its governance nonce.
        #[ink(topic)]
        pub nonce: u64,
        /// Who cancelled it.
        #[ink(topic)]
        pub by: Address,
    }

    // ------------------------------------------------------------------ helpers

    fn count(n: usize) -> u32 {
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Checks an owner set and threshold.
    fn check_owners(owners: &[Address], threshold: u32) -> Result<()> {
        if owners.is_empty() {
            return Err(Error::InvalidOwners { index: 0 });
        }
        let mut previous = NATIVE;
        for (i, owner) in owners.iter().enumerate() {
            if *owner <= previous {
                return Err(Error::InvalidOwners { index: count(i) });
            }
            previous = *owner;
        }
        if threshold == 0 || threshold > count(owners.len()) {
            return Err(Error::InvalidThreshold {
                threshold,
                owners: count(owners.len()),
            });
        }
        Ok(())
    }

    /// Checks what can be checked of an action without the state it will run against.
    fn check_action(action: &Action) -> Result<()> {
        match action {
            Action::SetOwners { owners, threshold } => check_owners(owners, *threshold),
            Action::SetDelay(delay) if *delay > MAX_DELAY => Err(Error::InvalidDelay(*delay)),
            Action::SetSigner { signer, .. } if *signer == NATIVE => Err(Error::ZeroAddress),
            _ => Ok(()),
        }
    }

    /// `keccak256` of the action's SCALE encoding: what owners sign for it.
    pub fn action_hash(action: &Action) -> H256 {
        H256(keccak256(&ink::scale::Encode::encode(action)))
    }

    impl SplitSettlement {
        /// Deploys with the chain id used in the EIP-712 domain, the owners (strictly
        /// ascending), their threshold, the timelock delay and the guardian (zero: none).
        /// Signers, tokens and the custodian are then set through governance.
        #[ink(constructor)]
        pub fn new(
            chain_id: u64,
            owners: Vec<Address>,
            threshold: u32,
            delay: u64,
            guardian: Address,
        ) -> Result<Self> {
            check_owners(&owners, threshold)?;
            if delay > MAX_DELAY {
                return Err(Error::InvalidDelay(delay));
            }
            Ok(Self {
                chain_id,
                signers: Mapping::default(),
                nonce_bitmap: Mapping::default(),
                tokens: Mapping::default(),
                balances: Mapping::default(),
                held: Mapping::default(),
                guardian,
                custodian: NATIVE,
                paused: false,
                owners,
                threshold,
                delay,
                governance_nonce: 0,
                operations: Mapping::default(),
            })
        }

        // -------------------------------------------------------------- settlement

        /// Settles a batch signed by an authorised signer and returns the signed digest.
        /// With [`FUNDING_PULL`] (native coin only) the call must carry exactly the total.
        #[ink(message, payable)]
        pub fn settle_batch(&mut self, batch: Batch, signature: [u8; 65]) -> Result<H256> {
            self.when_not_paused()?;
            let now = self.now();
            if now > batch.deadline {
                return Err(Error::BatchExpired {
                    deadline: batch.deadline,
                    now,
                });
            }
            let mut config = self.tokens.get(batch.token).unwrap_or_default();
            if !config.enabled {
                return Err(Error::TokenNotEnabled(batch.token));
            }
            let tally = tally(&batch, config.max_payment)?;
            let digest = eip712::typed_digest(self.domain_separator(), tally.struct_hash);
            let signer = recover(digest, &signature)?;
            if !self.signers.contains(signer) {
                return Err(Error::UnauthorizedSigner(signer));
            }
            let (word_key, word) = self.nonce_word(signer, batch.nonce)?;

            // Daily cap.
            let today = now.checked_div(DAY).unwrap_or_default();
            let spent = if config.day == today {
                config.spent_today
            } else {
                0
            };
            let remaining = config.daily_cap.saturating_sub(spent);
            if tally.total > remaining {
                return Err(Error::DailyCapExceeded {
                    token: batch.token,
                    requested: tally.total,
                    remaining,
                });
            }

            // Funding: every check before the first write, so a refusal changes nothing.
            let sent = self.env().transferred_value();
            let funder_key = (batch.token, batch.funder);
            let funder_after =
                match batch.funding {
                    FUNDING_DEPOSIT => {
                        if !sent.is_zero() {
                            return Err(Error::WrongValue { expected: 0, sent });
                        }
                        let available = self.balances.get(funder_key).unwrap_or_default();
                        Some(available.checked_sub(tally.total).ok_or(
                            Error::InsufficientBalance {
                                token: batch.token,
                                account: batch.funder,
                                needed: tally.total,
                                available,
                            },
                        )?)
                    }
                    FUNDING_PULL if batch.token != NATIVE => {
                        return Err(Error::PullNotSupported(batch.token));
                    }
                    FUNDING_PULL => {
                        if sent != U256::from(tally.total) {
                            return Err(Error::WrongValue {
                                expected: tally.total,
                                sent,
                            });
                        }
                        None
                    }
                    other => return Err(Error::InvalidFunding(other)),
                };
            let mut credited = Vec::with_capacity(batch.payees.len());
            for (payee, amount) in batch.payees.iter().zip(&tally.credits) {
                let key = (batch.token, *payee);
                // The funder may be a payee: read its balance as it will be after the draw.
                let before = if Some(key) == funder_after.map(|_| funder_key) {
                    funder_after.unwrap_or_default()
                } else {
                    self.balances.get(key).unwrap_or_default()
                };
                credited.push((
                    key,
                    before.checked_add(*amount).ok_or(Error::AmountOverflow)?,
                ));
            }
            let held_after = if funder_after.is_none() {
                Some(
                    self.held_of(batch.token)
                        .checked_add(tally.total)
                        .ok_or(Error::AmountOverflow)?,
                )
            } else {
                None
            };

            // Effects.
            self.nonce_bitmap.insert(word_key, &word);
            config.spent_today = spent.saturating_add(tally.total);
            config.day = today;
            self.tokens.insert(batch.token, &config);
            if let Some(after) = funder_after {
                self.balances.insert(funder_key, &after);
            }
            if let Some(held) = held_after {
                self.held.insert(batch.token, &held);
            }
            for (key, balance) in &credited {
                self.balances.insert(*key, balance);
            }
            self.env().emit_event(BatchSettled {
                batch_id: batch.batch_id,
                signer,
                token: batch.token,
                digest,
                funder: batch.funder,
                funding: batch.funding,
                nonce: batch.nonce,
                total: tally.total,
                credits: batch.payees.iter().copied().zip(tally.credits).collect(),
                payments: batch.payments,
            });
            Ok(digest)
        }

        /// The digest a signer signs for `batch` on this chain and contract. Validates the
        /// batch like [`Self::settle_batch`] does (limits aside) and fails the same way.
        #[ink(message)]
        pub fn batch_digest(&self, batch: Batch) -> Result<H256> {
            let tally = tally(&batch, u128::MAX)?;
            Ok(eip712::typed_digest(
                self.domain_separator(),
                tally.struct_hash,
            ))
        }

        /// What `batch` would credit each payee (by index), and its total.
        #[ink(message)]
        pub fn preview_credits(&self, batch: Batch) -> Result<(Vec<u128>, u128)> {
            let tally = tally(&batch, u128::MAX)?;
            Ok((tally.credits, tally.total))
        }

        /// Marks one of the caller's (a signer's) nonces used, cancelling a batch signed with it.
        #[ink(message)]
        pub fn invalidate_nonce(&mut self, nonce: U256) -> Result<()> {
            let signer = self.env().caller();
            let (key, word) = self.nonce_word(signer, nonce)?;
            self.nonce_bitmap.insert(key, &word);
            self.env().emit_event(NonceInvalidated { signer, nonce });
            Ok(())
        }

        // -------------------------------------------------------------- balances

        /// Credits `amount` of a non-native `token` to `funder`. Only the custodian, who
        /// holds the real tokens (see README: this contract keeps their ledger).
        #[ink(message)]
        pub fn deposit(&mut self, token: Address, funder: Address, amount: u128) -> Result<()> {
            self.when_not_paused()?;
            let caller = self.env().caller();
            if caller != self.custodian || caller == NATIVE {
                return Err(Error::Unauthorized(caller));
            }
            if funder == NATIVE {
                return Err(Error::ZeroAddress);
            }
            if amount == 0 {
                return Err(Error::ZeroValue);
            }
            if token == NATIVE || !self.tokens.get(token).unwrap_or_default().enabled {
                return Err(Error::TokenNotEnabled(token));
            }
            self.credit(token, funder, amount)?;
            self.env().emit_event(Deposited {
                token,
                funder,
                from: caller,
                amount,
            });
            Ok(())
        }

        /// Deposits the native coin sent with the call into `funder`'s balance.
        #[ink(message, payable)]
        pub fn deposit_native(&mut self, funder: Address) -> Result<()> {
            self.when_not_paused()?;
            if funder == NATIVE {
                return Err(Error::ZeroAddress);
            }
            let sent = self.env().transferred_value();
            if sent.is_zero() {
                return Err(Error::ZeroValue);
            }
            if !self.tokens.get(NATIVE).unwrap_or_default().enabled {
                return Err(Error::TokenNotEnabled(NATIVE));
            }
            let amount = u128::try_from(sent).map_err(|_| Error::AmountOverflow)?;
            self.credit(NATIVE, funder, amount)?;
            self.env().emit_event(Deposited {
                token: NATIVE,
                funder,
                from: self.env().caller(),
                amount,
            });
            Ok(())
        }

        /// Withdraws `amount` of `token` from the caller's balance to `to`. The native coin
        /// is sent; a non-native token is debited here and paid out by the custodian, who
        /// follows the `Withdrawn` events.
        #[ink(message)]
        pub fn withdraw(&mut self, token: Address, amount: u128, to: Address) -> Result<()> {
            self.when_not_paused()?;
            if to == NATIVE {
                return Err(Error::ZeroAddress);
            }
            if amount == 0 {
                return Err(Error::ZeroValue);
            }
            let account = self.env().caller();
            let available = self.balances.get((token, account)).unwrap_or_default();
            let after = available
                .checked_sub(amount)
                .ok_or(Error::InsufficientBalance {
                    token,
                    account,
                    needed: amount,
                    available,
                })?;
            if token == NATIVE {
                // Sent before the ledger write so a failed send changes nothing even where
                // the environment does not revert (off-chain tests). Re-entry is refused
                // by ink! by default, so the ledger cannot be read stale.
                self.env()
                    .transfer(to, U256::from(amount))
                    .map_err(|_| Error::NativeTransferFailed { to, amount })?;
            }
            self.balances.insert((token, account), &after);
            self.held
                .insert(token, &self.held_of(token).saturating_sub(amount));
            self.env().emit_event(Withdrawn {
                token,
                account,
                to,
                amount,
            });
            Ok(())
        }

        // -------------------------------------------------------------- guardian

        /// Pauses settlement, deposits and withdrawals. The guardian or any owner.
        #[ink(message)]
        pub fn pause(&mut self) -> Result<()> {
            let caller = self.env().caller();
            if !self.is_guardian_or_owner(caller) {
                return Err(Error::Unauthorized(caller));
            }
            if self.paused {
                return Err(Error::Paused);
            }
            self.paused = true;
            self.env().emit_event(Paused { by: caller });
            Ok(())
        }

        /// Cancels a scheduled operation. The guardian or any owner: cancelling can only
        /// stop a change, never make one.
        #[ink(message)]
        pub fn cancel(&mut self, nonce: u64) -> Result<()> {
            let caller = self.env().caller();
            if !self.is_guardian_or_owner(caller) {
                return Err(Error::Unauthorized(caller));
            }
            if self.operations.take(nonce).is_none() {
                return Err(Error::UnknownOperation(nonce));
            }
            self.env()
                .emit_event(OperationCancelled { nonce, by: caller });
            Ok(())
        }

        // -------------------------------------------------------------- governance

        /// Schedules `action` with owner signatures over [`Self::operation_digest`] at the
        /// current governance nonce (at least `threshold`, from distinct owners in strictly
        /// ascending address order). Consumes the nonce and returns it; the action may run
        /// through [`Self::execute`] once the delay has passed. Anyone may submit.
        #[ink(message)]
        pub fn schedule(&mut self, action: Action, signatures: Vec<[u8; 65]>) -> Result<u64> {
            check_action(&action)?;
            let nonce = self.governance_nonce;
            let hash = action_hash(&action);
            let digest = self.operation_digest_for(nonce, hash);
            let got = count(signatures.len());
            if got < self.threshold {
                return Err(Error::ThresholdNotMet {
                    got,
                    needed: self.threshold,
                });
            }
            let mut previous = NATIVE;
            for (i, signature) in signatures.iter().enumerate() {
                let signer = recover(digest, signature)?;
                if self.owners.binary_search(&signer).is_err() {
                    return Err(Error::SignerNotOwner {
                        index: count(i),
                        signer,
                    });
                }
                if signer <= previous {
                    return Err(Error::SignersNotAscending { index: count(i) });
                }
                previous = signer;
            }
            let eta = self.now().saturating_add(self.delay);
            self.governance_nonce = nonce.checked_add(1).ok_or(Error::AmountOverflow)?;
            self.operations.insert(
                nonce,
                &Operation {
                    action: action.clone(),
                    eta,
                },
            );
            self.env().emit_event(OperationScheduled {
                nonce,
                action_hash: hash,
                action,
                eta,
            });
            Ok(nonce)
        }

        /// Executes a scheduled operation whose delay has passed. Anyone may call.
        #[ink(message)]
        pub fn execute(&mut self, nonce: u64) -> Result<()> {
            let operation = self
                .operations
                .get(nonce)
                .ok_or(Error::UnknownOperation(nonce))?;
            let now = self.now();
            if now < operation.eta {
                return Err(Error::OperationNotReady {
                    eta: operation.eta,
                    now,
                });
            }
            self.apply(operation.action)?;
            self.operations.remove(nonce);
            self.env().emit_event(OperationExecuted { nonce });
            Ok(())
        }

        /// The digest owners sign to schedule `action` at governance nonce `nonce`.
        #[ink(message)]
        pub fn operation_digest(&self, nonce: u64, action: Action) -> H256 {
            self.operation_digest_for(nonce, action_hash(&action))
        }

        // -------------------------------------------------------------- views

        /// The EIP-712 domain separator for this chain id and this contract's address.
        #[ink(message)]
        pub fn domain_separator(&self) -> H256 {
            eip712::domain_separator(self.chain_id, self.env().address())
        }

        /// The chain id in the EIP-712 domain.
        #[ink(message)]
        pub fn chain_id(&self) -> u64 {
            self.chain_id
        }

        /// Whether `signer` may sign batches.
        #[ink(message)]
        pub fn is_signer(&self, signer: Address) -> bool {
            self.signers.contains(signer)
        }

        /// Whether `signer`'s `nonce` is used.
        #[ink(message)]
        pub fn is_nonce_used(&self, signer: Address, nonce: U256) -> bool {
            let word = self
                .nonce_bitmap
                .get((signer, nonce_word_index(nonce)))
                .unwrap_or_default();
            !(word & nonce_bit(nonce)).is_zero()
        }

        /// The internal balance of `account` in `token`.
        #[ink(message)]
        pub fn balance_of(&self, token: Address, account: Address) -> u128 {
            self.balances.get((token, account)).unwrap_or_default()
        }

        /// The sum of all internal balances in `token`: what the contract holds for it.
        #[ink(message)]
        pub fn held(&self, token: Address) -> u128 {
            self.held_of(token)
        }

        /// A token's limits and today's use.
        #[ink(message)]
        pub fn token_config(&self, token: Address) -> TokenConfig {
            self.tokens.get(token).unwrap_or_default()
        }

        /// The guardian (zero: none).
        #[ink(message)]
        pub fn guardian(&self) -> Address {
            self.guardian
        }

        /// The custodian of non-native tokens (zero: none).
        #[ink(message)]
        pub fn custodian(&self) -> Address {
            self.custodian
        }

        /// Whether settlement, deposits and withdrawals are paused.
        #[ink(message)]
        pub fn paused(&self) -> bool {
            self.paused
        }

        /// The owners (ascending) and the threshold.
        #[ink(message)]
        pub fn owners(&self) -> (Vec<Address>, u32) {
            (self.owners.clone(), self.threshold)
        }

        /// The timelock delay (seconds).
        #[ink(message)]
        pub fn delay(&self) -> u64 {
            self.delay
        }

        /// The nonce the next scheduled operation will use.
        #[ink(message)]
        pub fn governance_nonce(&self) -> u64 {
            self.governance_nonce
        }

        /// A scheduled operation, if it is still pending.
        #[ink(message)]
        pub fn operation(&self, nonce: u64) -> Option<Operation> {
            self.operations.get(nonce)
        }

        /// The version of this code.
        #[ink(message)]
        pub fn version(&self) -> u32 {
            1
        }

        // -------------------------------------------------------------- internals

        fn now(&self) -> u64 {
            self.env().block_timestamp()
        }

        fn when_not_paused(&self) -> Result<()> {
            if self.paused {
                return Err(Error::Paused);
            }
            Ok(())
        }

        fn is_guardian_or_owner(&self, who: Address) -> bool {
            (who == self.guardian && who != NATIVE) || self.owners.binary_search(&who).is_ok()
        }

        fn held_of(&self, token: Address) -> u128 {
            self.held.get(token).unwrap_or_default()
        }

        /// The bitmap word with `nonce` marked, and its key; fails if it was marked already.
        fn nonce_word(&self, signer: Address, nonce: U256) -> Result<((Address, U256), U256)> {
            let key = (signer, nonce_word_index(nonce));
            let word = self.nonce_bitmap.get(key).unwrap_or_default();
            let bit = nonce_bit(nonce);
            if !(word & bit).is_zero() {
                return Err(Error::NonceAlreadyUsed { signer, nonce });
            }
            Ok((key, word | bit))
        }

        /// Adds `amount` to an internal balance and to what is held for the token.
        fn credit(&mut self, token: Address, account: Address, amount: u128) -> Result<()> {
            let balance = self
                .balance_of(token, account)
                .checked_add(amount)
                .ok_or(Error::AmountOverflow)?;
            let held = self
                .held_of(token)
                .checked_add(amount)
                .ok_or(Error::AmountOverflow)?;
            self.balances.insert((token, account), &balance);
            self.held.insert(token, &held);
            Ok(())
        }

        fn operation_digest_for(&self, nonce: u64, action_hash: H256) -> H256 {
            eip712::typed_digest(
                self.domain_separator(),
                eip712::operation_struct_hash(nonce, action_hash),
            )
        }

        fn apply(&mut self, action: Action) -> Result<()> {
            match action {
                Action::SetCodeHash(code_hash) => {
                    self.env()
                        .set_code_hash(&code_hash)
                        .map_err(|_| Error::UpgradeFailed)?;
                    self.env().emit_event(Upgraded { code_hash });
                }
                Action::SetOwners { owners, threshold } => {
                    check_owners(&owners, threshold)?;
                    self.owners = owners.clone();
                    self.threshold = threshold;
                    self.env().emit_event(OwnersSet { owners, threshold });
                }
                Action::SetDelay(delay) => {
                    if delay > MAX_DELAY {
                        return Err(Error::InvalidDelay(delay));
                    }
                    self.delay = delay;
                    self.env().emit_event(DelaySet { delay });
                }
                Action::SetSigner { signer, authorised } => {
                    if signer == NATIVE {
                        return Err(Error::ZeroAddress);
                    }
                    if authorised {
                        self.signers.insert(signer, &());
                    } else {
                        self.signers.remove(signer);
                    }
                    self.env().emit_event(SignerSet { signer, authorised });
                }
                Action::SetTokenConfig {
                    token,
                    enabled,
                    max_payment,
                    daily_cap,
                } => {
                    let mut config = self.tokens.get(token).unwrap_or_default();
                    config.enabled = enabled;
                    config.max_payment = max_payment;
                    config.daily_cap = daily_cap;
                    self.tokens.insert(token, &config);
                    self.env().emit_event(TokenConfigured {
                        token,
                        enabled,
                        max_payment,
                        daily_cap,
                    });
                }
                Action::SetGuardian(guardian) => {
                    self.guardian = guardian;
                    self.env().emit_event(GuardianSet { guardian });
                }
                Action::SetCustodian(custodian) => {
                    self.custodian = custodian;
                    self.env().emit_event(CustodianSet { custodian });
                }
                Action::Unpause => {
                    if !self.paused {
                        return Err(Error::NotPaused);
                    }
                    self.paused = false;
                    self.env().emit_event(Unpaused {});
                }
            }
            Ok(())
        }
    }

    /// The bitmap word that holds `nonce`.
    #[allow(clippy::arithmetic_side_effects)] // a right shift by a constant below 256 cannot overflow
    fn nonce_word_index(nonce: U256) -> U256 {
        nonce >> 8
    }

    /// The bit of `nonce` in its bitmap word.
    #[allow(clippy::arithmetic_side_effects)] // the shift is masked below 256
    fn nonce_bit(nonce: U256) -> U256 {
        U256::one() << (nonce.low_u32() & 0xff)
    }

    /// The address that signed `digest`, for a 65-byte `r || s || v` signature with `v` 27
    /// or 28, `r` in `1..n` and `s` in `1..=n/2` (what OpenZeppelin's ECDSA accepts).
    pub fn recover(digest: H256, signature: &[u8; 65]) -> Result<Address> {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&signature[..32]);
        s.copy_from_slice(&signature[32..64]);
        if s > SECP256K1_HALF_N {
            return Err(Error::InvalidSignatureS);
        }
        let zero = [0u8; 32];
        let v = signature[64];
        if r == zero || r >= SECP256K1_N || s == zero || !(27..=28).contains(&v) {
            return Err(Error::InvalidSignature);
        }
        let mut normalised = *signature;
        normalised[64] = v.saturating_sub(27);
        let mut public = [0u8; 33];
        ink::env::ecdsa_recover(&normalised, &digest.0, &mut public)
            .map_err(|_| Error::InvalidSignature)?;
        let mut address = [0u8; 20];
        ink::env::ecdsa_to_eth_address(&public, &mut address)
            .map_err(|_| Error::InvalidSignature)?;
        Ok(Address::from(address))
    }
}
