//! What every handler shares: the database, the libraries' handles, the configuration.

use std::{collections::BTreeMap, sync::Arc};

use alloy::primitives::{Address, U256};
use settle_relayer::{Intake, IntakeConfig, IntegratorLimits, RpcPool};
use sqlx::PgPool;

use crate::ratelimit::RateLimiter;

/// How the API behaves.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The chain payments settle on.
    pub chain_id: u64,
    /// The SplitSettlement proxy.
    pub contract: Address,
    /// What intake accepts.
    pub intake: IntakeConfig,
    /// Limits per integrator.
    pub limits: BTreeMap<String, IntegratorLimits>,
    /// Limits of integrators not listed.
    pub default_limits: IntegratorLimits,
    /// Requests per second per key.
    pub rate_per_sec: u64,
    /// Burst per key.
    pub burst: u64,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Most items per page.
    pub max_page: u32,
    /// The relayer's sender keys, whose balances `/metrics` reports.
    pub senders: Vec<Address>,
    /// Sender balance below which the low-balance gauge is 1.
    pub low_balance_wei: U256,
}

/// Checks that the HSM answers (for `/readyz`).
pub type HsmProbe = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Signatures made by this process's HSM signers and their total microseconds (for `/metrics`).
pub type SigningStats = Arc<dyn Fn() -> (u64, u64) + Send + Sync>;

/// More Prometheus text for `/metrics` (another part of the process, such as the indexer).
pub type ExtraMetrics = Arc<dyn Fn() -> String + Send + Sync>;

struct Inner {
    pool: PgPool,
    intake: Intake,
    rpc: Arc<RpcPool>,
    config: ApiConfig,
    limiter: RateLimiter,
    hsm: Option<HsmProbe>,
    signing: Option<SigningStats>,
    extra_metrics: Option<ExtraMetrics>,
}

/// The handlers' shared state (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `pool` (migrated) and `rpc`; `hsm` probes the signer for `/readyz`.
    pub fn new(pool: PgPool, rpc: Arc<RpcPool>, config: ApiConfig, hsm: Option<HsmProbe>) -> Self {
        Self(Arc::new(Inner {
            intake: Intake::new(pool.clone(), config.intake.clone()),
            limiter: RateLimiter::new(config.rate_per_sec, config.burst),
            pool,
            rpc,
            config,
            hsm,
            signing: None,
            extra_metrics: None,
        }))
    }

    /// The same state, with `/metrics` reporting the signers' counters and `extra` text.
    /// Call before the state is shared (it is a no-op on a state already cloned).
    #[must_use]
    pub fn with_metrics(
        mut self,
        signing: Option<SigningStats>,
        extra: Option<ExtraMetrics>,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.signing = signing;
            inner.extra_metrics = extra;
        }
        self
    }

    /// The signers' counters, `(0, 0)` when this process signs nothing.
    pub fn signing_stats(&self) -> (u64, u64) {
        self.0.signing.as_ref().map_or((0, 0), |f| f())
    }

    /// Extra Prometheus text, empty when none.
    pub fn extra_metrics(&self) -> String {
        self.0
            .extra_metrics
            .as_ref()
            .map_or_else(String::new, |f| f())
    }

    /// The database.
    pub fn pool(&self) -> &PgPool {
        &self.0.pool
    }

    /// The relayer's intake.
    pub fn intake(&self) -> &Intake {
        &self.0.intake
    }

    /// The chain's RPC endpoints.
    pub fn rpc(&self) -> &RpcPool {
        &self.0.rpc
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.0.config
    }

    /// The per-key rate limiter.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.0.limiter
    }

    /// The HSM probe, if one was given.
    pub fn hsm(&self) -> Option<&HsmProbe> {
        self.0.hsm.as_ref()
    }

    /// An integrator's limits.
    pub fn limits_for(&self, integrator: &str) -> IntegratorLimits {
        self.0
            .config
            .limits
            .get(integrator)
            .copied()
            .unwrap_or(self.0.config.default_limits)
    }
}
