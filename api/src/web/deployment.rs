//! The deployment page (auditor keys): what the chain says about the contracts this API serves.
//!
//! Everything shown is read from the chain when the page is asked for, never from our database:
//! the proxy's implementation (the ERC-1967 slot), its owner (the timelock) and that timelock's
//! minimum delay, the multisigs that may propose to the timelock with their owners and threshold,
//! the guardian, the authorised batch signers, and whether the deployed runtime bytecode of the
//! proxy, the implementation and the multisig matches the committed build artifacts
//! (`settle_deploy::verify`'s comparison, immutables masked; the full check that recompiles the
//! pinned sources is `settle audit verify-deployment`).

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, U256, b256},
    providers::Provider,
    rpc::types::{Filter, TransactionRequest},
    sol_types::{SolCall, SolEvent},
};
use askama::Template;
use axum::{extract::State, response::Response};
use settle_contracts::{SettleMultisig, SplitSettlement, TimelockController};
use settle_deploy::{Comparison, Shipped};

use super::{Nav, UiError, UiUser, render};
use crate::{
    auth::Role,
    problem::{ApiError, ErrorCode},
    state::AppState,
};

/// `bytes32(uint256(keccak256("eip1967.proxy.implementation")) - 1)`: where an ERC-1967 proxy
/// keeps its implementation.
const IMPLEMENTATION_SLOT: B256 =
    b256!("360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc");

fn unavailable(what: &str, e: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "{what} unreadable for the deployment page");
    ApiError::new(
        ErrorCode::Unavailable,
        format!("the chain did not answer for {what}; try again later"),
    )
}

/// Calls the view `call` on `to` at the latest block.
async fn view<C>(state: &AppState, to: Address, call: C, what: &str) -> Result<C::Return, ApiError>
where
    C: SolCall,
{
    let request = TransactionRequest::default()
        .with_to(to)
        .with_input(call.abi_encode());
    let answer: Bytes = state
        .rpc()
        .call("eth_call", |p| {
            let request = request.clone();
            async move { p.call(request).await }
        })
        .await
        .map_err(|e| unavailable(what, &e))?;
    C::abi_decode_returns(&answer).map_err(|e| unavailable(what, &e))
}

/// Addresses named in topic `index` of the logs of `event` (topic 0) emitted by `address`, first
/// seen first, each once.
async fn logged_accounts(
    state: &AppState,
    address: Address,
    event: B256,
    topic1: Option<B256>,
    index: usize,
) -> Result<Vec<Address>, ApiError> {
    let mut filter = Filter::new()
        .address(address)
        .event_signature(event)
        .from_block(0u64);
    if let Some(topic) = topic1 {
        filter = filter.topic1(topic);
    }
    let filter = &filter;
    let logs = state
        .rpc()
        .call(
            "eth_getLogs",
            move |p| async move { p.get_logs(filter).await },
        )
        .await
        .map_err(|e| unavailable("event logs", &e))?;
    let mut accounts: Vec<Address> = Vec::new();
    for log in logs {
        if let Some(topic) = log.topics().get(index) {
            let account = Address::from_word(*topic);
            if !accounts.contains(&account) {
                accounts.push(account);
            }
        }
    }
    Ok(accounts)
}

/// A multisig that may propose to the timelock.
#[derive(Debug)]
struct Multisig {
    address: String,
    owners: Vec<String>,
    threshold: String,
}

#[derive(Template)]
#[template(path = "deployment.html")]
struct DeploymentPage {
    nav: Nav,
    chain_id: u64,
    proxy: String,
    implementation: String,
    version: String,
    owner: String,
    min_delay: String,
    multisigs: Vec<Multisig>,
    other_proposers: Vec<String>,
    guardian: String,
    paused: bool,
    signers: Vec<String>,
    bytecode: Vec<Verification>,
}

/// What the page says about one contract's deployed bytecode.
#[derive(Debug)]
pub(crate) struct Verification {
    /// The contract's name in the sources.
    contract: &'static str,
    /// Where it is deployed.
    address: String,
    /// `passed` or `failed`; `not checked` when the committed build could not be read.
    verdict: &'static str,
    /// Why.
    detail: String,
}

/// Compares `code` (deployed at `address`) with the committed build of `contract`
/// (`settle_deploy::verify`: immutables masked, metadata trailer ignored).
fn verify_bytecode(contract: Shipped, address: Address, code: &[u8]) -> Verification {
    let (verdict, detail) = match settle_deploy::committed(contract) {
        Err(e) => {
            tracing::warn!(error = %e, "committed artifact unreadable");
            (
                "not checked",
                "not checked here: run `settle audit verify-deployment`".to_owned(),
            )
        }
        Ok(runtime) => match runtime.compare(code) {
            Comparison::Match { len, masked } => (
                "passed",
                format!(
                    "the runtime bytecode equals the committed build ({len} bytes compared, {masked} bytes of immutables masked, metadata ignored); `settle audit verify-deployment` also recompiles the sources"
                ),
            ),
            Comparison::Mismatch(m) => ("failed", format!("the runtime bytecode differs: {m}")),
        },
    };
    Verification {
        contract: contract.name(),
        address: address.to_checksum(None),
        verdict,
        detail,
    }
}

async fn code_at(state: &AppState, address: Address) -> Result<Bytes, ApiError> {
    state
        .rpc()
        .call(
            "eth_getCode",
            |p| async move { p.get_code_at(address).await },
        )
        .await
        .map_err(|e| unavailable("a contract's code", &e))
}

/// `GET /ui/deployment`.
pub(crate) async fn page(
    State(state): State<AppState>,
    UiUser(principal): UiUser,
) -> Result<Response, UiError> {
    let result: Result<DeploymentPage, UiError> = async {
        principal.require(&[Role::Auditor])?;
        let proxy = state.config().contract;
        let slot = state
            .rpc()
            .call("eth_getStorageAt", |p| async move {
                p.get_storage_at(proxy, U256::from_be_bytes(IMPLEMENTATION_SLOT.0))
                    .await
            })
            .await
            .map_err(|e| unavailable("the implementation slot", &e))?;
        let implementation = Address::from_word(B256::from(slot));
        let mut bytecode = vec![
            verify_bytecode(Shipped::ERC1967Proxy, proxy, &code_at(&state, proxy).await?),
            verify_bytecode(
                Shipped::SplitSettlement,
                implementation,
                &code_at(&state, implementation).await?,
            ),
        ];
        let owner = view(&state, proxy, SplitSettlement::ownerCall {}, "owner()").await?;
        let version = view(&state, proxy, SplitSettlement::versionCall {}, "version()").await?;
        let guardian = view(
            &state,
            proxy,
            SplitSettlement::guardianCall {},
            "guardian()",
        )
        .await?;
        let paused = view(&state, proxy, SplitSettlement::pausedCall {}, "paused()").await?;
        let min_delay = view(
            &state,
            owner,
            TimelockController::getMinDelayCall {},
            "the timelock's getMinDelay()",
        )
        .await?;
        let proposer_role = view(
            &state,
            owner,
            TimelockController::PROPOSER_ROLECall {},
            "the timelock's PROPOSER_ROLE()",
        )
        .await?;
        let mut multisigs = Vec::new();
        let mut other_proposers = Vec::new();
        for account in logged_accounts(
            &state,
            owner,
            TimelockController::RoleGranted::SIGNATURE_HASH,
            Some(proposer_role),
            2,
        )
        .await?
        {
            let holds = view(
                &state,
                owner,
                TimelockController::hasRoleCall {
                    role: proposer_role,
                    account,
                },
                "hasRole()",
            )
            .await?;
            if !holds {
                continue;
            }
            let owners = view(
                &state,
                account,
                SettleMultisig::getOwnersCall {},
                "getOwners()",
            )
            .await;
            let threshold = view(
                &state,
                account,
                SettleMultisig::thresholdCall {},
                "threshold()",
            )
            .await;
            match (owners, threshold) {
                (Ok(owners), Ok(threshold)) => {
                    bytecode.push(verify_bytecode(
                        Shipped::SettleMultisig,
                        account,
                        &code_at(&state, account).await?,
                    ));
                    multisigs.push(Multisig {
                        address: account.to_checksum(None),
                        owners: owners.iter().map(|o| o.to_checksum(None)).collect(),
                        threshold: threshold.to_string(),
                    });
                }
                _ => other_proposers.push(account.to_checksum(None)),
            }
        }
        let mut signers = Vec::new();
        for signer in logged_accounts(
            &state,
            proxy,
            SplitSettlement::SignerSet::SIGNATURE_HASH,
            None,
            1,
        )
        .await?
        {
            if view(
                &state,
                proxy,
                SplitSettlement::isSignerCall { signer },
                "isSigner()",
            )
            .await?
            {
                signers.push(signer.to_checksum(None));
            }
        }
        Ok(DeploymentPage {
            nav: Nav::new(&principal, "/ui/deployment"),
            chain_id: state.config().chain_id,
            proxy: proxy.to_checksum(None),
            implementation: implementation.to_checksum(None),
            version,
            owner: owner.to_checksum(None),
            min_delay: min_delay.to_string(),
            multisigs,
            other_proposers,
            guardian: guardian.to_checksum(None),
            paused,
            signers,
            bytecode,
        })
    }
    .await;
    Ok(render(&result.map_err(|e| e.with_nav(&principal))?))
}
