//! Several JSON-RPC endpoints for one chain, used by health.
//!
//! Every call goes to the healthiest endpoint first and moves on to the next
//! when an endpoint fails at the transport level (connection refused or reset,
//! HTTP error, unreadable reply) or does not answer within the timeout. An
//! answer from a node, including a JSON-RPC error such as a revert, is final:
//! another node would say the same, and a broadcast must not be repeated
//! blindly. Health is an exponentially weighted error rate and latency per
//! endpoint; an endpoint that failed several times in a row rests for a
//! while, so one bad endpoint costs at most one timeout per rest period.

use std::{
    future::Future,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder},
    transports::{RpcError as AlloyRpcError, TransportError},
};
use thiserror::Error;

/// Failures in a row after which an endpoint rests.
const REST_AFTER_FAILURES: u32 = 3;
/// Weight of the newest observation in the moving averages, in percent.
const EWMA_NEW_PERCENT: u64 = 20;

/// How the endpoints are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcConfig {
    /// Longest wait for one answer from one endpoint.
    pub timeout: Duration,
    /// How long an endpoint that keeps failing is left alone.
    pub rest: Duration,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            rest: Duration::from_secs(10),
        }
    }
}

/// Why an RPC call failed.
#[derive(Debug, Error)]
pub enum RpcError {
    /// A node answered with a JSON-RPC error (a revert, "nonce too low", ...).
    #[error("node error: {0}")]
    Node(TransportError),
    /// No endpoint answered.
    #[error("no RPC endpoint answered {op}; last failure: {last}")]
    Unavailable {
        /// The call.
        op: &'static str,
        /// The last endpoint's failure.
        last: String,
    },
    /// An endpoint URL is not valid.
    #[error("RPC endpoint {0:?} is not a valid URL; use http(s)://host:port")]
    BadUrl(String),
    /// No endpoints were configured.
    #[error("no RPC endpoints configured; give at least one URL")]
    NoEndpoints,
}

impl RpcError {
    /// The node's error, when a node answered with one.
    pub const fn node_error(&self) -> Option<&TransportError> {
        match self {
            Self::Node(e) => Some(e),
            _ => None,
        }
    }

    /// The node's error message, lower-cased, when a node answered with one.
    pub fn node_message(&self) -> Option<String> {
        match self {
            Self::Node(AlloyRpcError::ErrorResp(payload)) => Some(payload.message.to_lowercase()),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Health {
    consecutive_failures: u32,
    resting_until: Option<Instant>,
    /// Error rate in parts per million.
    error_ppm: u64,
    /// Latency in microseconds.
    latency_us: u64,
    calls: u64,
    failures: u64,
}

#[derive(Debug)]
struct Endpoint {
    url: String,
    provider: DynProvider,
    health: Mutex<Health>,
}

/// A snapshot of one endpoint's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHealth {
    /// The endpoint.
    pub url: String,
    /// Calls made.
    pub calls: u64,
    /// Calls that failed at the transport level or timed out.
    pub failures: u64,
    /// Smoothed latency in microseconds.
    pub latency_us: u64,
    /// Whether the endpoint is resting now.
    pub resting: bool,
}

/// The endpoints of one chain.
#[derive(Debug)]
pub struct RpcPool {
    endpoints: Vec<Endpoint>,
    config: RpcConfig,
}

fn ewma(old: u64, new: u64) -> u64 {
    let keep = old.saturating_mul(100u64.saturating_sub(EWMA_NEW_PERCENT));
    keep.saturating_add(new.saturating_mul(EWMA_NEW_PERCENT)) / 100
}

impl RpcPool {
    /// A pool over `urls`, tried in the given order until health says otherwise.
    pub fn new(urls: &[String], config: RpcConfig) -> Result<Self, RpcError> {
        if urls.is_empty() {
            return Err(RpcError::NoEndpoints);
        }
        let endpoints = urls
            .iter()
            .map(|url| {
                let parsed = url.parse().map_err(|_| RpcError::BadUrl(url.clone()))?;
                Ok(Endpoint {
                    url: url.clone(),
                    provider: ProviderBuilder::new()
                        .disable_recommended_fillers()
                        .connect_http(parsed)
                        .erased(),
                    health: Mutex::new(Health {
                        consecutive_failures: 0,
                        resting_until: None,
                        error_ppm: 0,
                        latency_us: 0,
                        calls: 0,
                        failures: 0,
                    }),
                })
            })
            .collect::<Result<Vec<_>, RpcError>>()?;
        Ok(Self { endpoints, config })
    }

    /// The endpoints' health, in configuration order.
    pub fn health(&self) -> Vec<EndpointHealth> {
        let now = Instant::now();
        self.endpoints
            .iter()
            .map(|e| {
                let h = e.health.lock().unwrap_or_else(PoisonError::into_inner);
                EndpointHealth {
                    url: e.url.clone(),
                    calls: h.calls,
                    failures: h.failures,
                    latency_us: h.latency_us,
                    resting: h.resting_until.is_some_and(|t| t > now),
                }
            })
            .collect()
    }

    /// Endpoint indexes, best first: rested ones last, then by error rate and latency.
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let mut scored: Vec<(bool, u64, usize)> = self
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let h = e.health.lock().unwrap_or_else(PoisonError::into_inner);
                let resting = h.resting_until.is_some_and(|t| t > now);
                // One percent of errors weighs like 10 ms of latency.
                let score = h.latency_us.saturating_add(h.error_ppm);
                (resting, score, i)
            })
            .collect();
        scored.sort_unstable();
        scored.into_iter().map(|(_, _, i)| i).collect()
    }

    fn record(&self, index: usize, elapsed: Duration, failed: bool) {
        let Some(endpoint) = self.endpoints.get(index) else {
            return;
        };
        let mut h = endpoint
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        h.calls = h.calls.saturating_add(1);
        h.latency_us = ewma(
            h.latency_us,
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
        h.error_ppm = ewma(h.error_ppm, if failed { 1_000_000 } else { 0 });
        if failed {
            h.failures = h.failures.saturating_add(1);
            h.consecutive_failures = h.consecutive_failures.saturating_add(1);
            if h.consecutive_failures >= REST_AFTER_FAILURES {
                h.resting_until = Instant::now().checked_add(self.config.rest);
            }
        } else {
            h.consecutive_failures = 0;
            h.resting_until = None;
        }
    }

    /// Runs `call` on the healthiest endpoint, falling over to the others on
    /// transport failures and timeouts.
    pub async fn call<T, F, Fut>(&self, op: &'static str, call: F) -> Result<T, RpcError>
    where
        F: Fn(DynProvider) -> Fut,
        Fut: Future<Output = Result<T, TransportError>>,
    {
        let mut last = String::from("no endpoint tried");
        for index in self.order() {
            let Some(endpoint) = self.endpoints.get(index) else {
                continue;
            };
            let started = Instant::now();
            let outcome =
                tokio::time::timeout(self.config.timeout, call(endpoint.provider.clone())).await;
            let elapsed = started.elapsed();
            match outcome {
                Ok(Ok(value)) => {
                    self.record(index, elapsed, false);
                    return Ok(value);
                }
                Ok(Err(err @ AlloyRpcError::ErrorResp(_))) => {
                    self.record(index, elapsed, false);
                    return Err(RpcError::Node(err));
                }
                Ok(Err(err)) => {
                    self.record(index, elapsed, true);
                    tracing::warn!(endpoint = %endpoint.url, op, error = %err, "RPC endpoint failed");
                    last = format!("{}: {err}", endpoint.url);
                }
                Err(_) => {
                    self.record(index, elapsed, true);
                    tracing::warn!(endpoint = %endpoint.url, op, "RPC endpoint timed out");
                    last = format!(
                        "{}: timed out after {:?}",
                        endpoint.url, self.config.timeout
                    );
                }
            }
        }
        Err(RpcError::Unavailable { op, last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_weighs_the_new_value_by_a_fifth() {
        assert_eq!(ewma(0, 1_000_000), 200_000);
        assert_eq!(ewma(200_000, 0), 160_000);
        assert_eq!(ewma(u64::MAX, u64::MAX), u64::MAX / 100);
    }

    #[test]
    fn no_endpoints_and_bad_urls_are_refused() {
        assert!(matches!(
            RpcPool::new(&[], RpcConfig::default()),
            Err(RpcError::NoEndpoints)
        ));
        assert!(matches!(
            RpcPool::new(&["not a url".to_owned()], RpcConfig::default()),
            Err(RpcError::BadUrl(u)) if u == "not a url"
        ));
    }
}
