//! What a deployment run did: its steps and what each came to.

use std::{fmt, path::PathBuf};

use alloy::primitives::{Address, TxHash};

use crate::{Manifest, config::TokenLimits, plan::Contract};

/// One step of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create a contract with CREATE2 at its planned address.
    Create {
        /// Which contract.
        contract: Contract,
        /// Where it is.
        address: Address,
    },
    /// Authorise a relayer batch signer.
    AuthoriseSigner(Address),
    /// Enable a token with its limits.
    EnableToken(TokenLimits),
    /// Set the guardian.
    SetGuardian(Address),
    /// Transfer the proxy's ownership to the timelock.
    TransferOwnership {
        /// The timelock.
        timelock: Address,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create { contract, address } => write!(f, "create {contract} at {address}"),
            Self::AuthoriseSigner(signer) => write!(f, "authorise batch signer {signer}"),
            Self::EnableToken(limits) => write!(f, "enable {}", TokenDisplay(limits)),
            Self::SetGuardian(guardian) => write!(f, "set guardian {guardian}"),
            Self::TransferOwnership { timelock } => {
                write!(
                    f,
                    "transfer ownership of the proxy to the timelock {timelock}"
                )
            }
        }
    }
}

pub(crate) struct TokenDisplay<'a>(pub(crate) &'a TokenLimits);

impl fmt::Display for TokenDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let TokenLimits {
            token,
            max_payment,
            daily_cap,
        } = self.0;
        if token.is_zero() {
            f.write_str("the native coin")?;
        } else {
            write!(f, "token {token}")?;
        }
        write!(
            f,
            " (max payment {max_payment}, daily cap {daily_cap}, base units)"
        )
    }
}

/// What a step came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Sent and mined.
    Done {
        /// The transaction.
        tx: TxHash,
        /// The block it was mined in.
        block: u64,
    },
    /// Already in place; nothing sent.
    Already,
}

/// A transaction that was mined and succeeded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mined {
    pub(crate) tx: TxHash,
    pub(crate) block: u64,
}

impl From<Mined> for StepStatus {
    fn from(Mined { tx, block }: Mined) -> Self {
        Self::Done { tx, block }
    }
}

/// A step and what it came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// The step.
    pub step: Step,
    /// What it came to.
    pub status: StepStatus,
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            StepStatus::Done { tx, block } => {
                write!(f, "done     {} (tx {tx}, block {block})", self.step)
            }
            StepStatus::Already => write!(f, "already  {}", self.step),
        }
    }
}

/// What a deployment run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The chain.
    pub chain_id: u64,
    /// Every step, in order, with what it came to.
    pub steps: Vec<StepReport>,
    /// The deployment as now recorded.
    pub manifest: Manifest,
    /// Where the manifest is.
    pub manifest_path: PathBuf,
    /// Whether the manifest file was (re)written; an unchanged one is left alone.
    pub manifest_written: bool,
}

impl Outcome {
    /// Whether every step was already in place (nothing was sent).
    pub fn nothing_to_do(&self) -> bool {
        self.steps.iter().all(|s| s.status == StepStatus::Already)
    }

    /// How many transactions were sent.
    pub fn transactions(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.status != StepStatus::Already)
            .count()
    }
}
