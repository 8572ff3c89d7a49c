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

struct Inner {
    pool: PgPool,
    intake: Intake,
    rpc: Arc<RpcPool>,
    config: ApiConfig,
    limiter: RateLimiter,
    hsm: Option<HsmProbe>,
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
        }))
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
