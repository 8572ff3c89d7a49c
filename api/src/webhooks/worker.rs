//! The delivery worker: status changes in, signed POSTs out, retried with backoff.
//!
//! Each pass reads the relayer's feed of status changes from the stored
//! position, makes one event per change whose integrator has endpoints, and
//! stores the events, one pending delivery per endpoint and the new position
//! in one transaction (so a change is enqueued exactly once). Then it claims
//! the due deliveries and POSTs each; a 2xx delivers it, anything else is
//! logged and retried after `backoff_base * 2^attempt` until `max_attempts`.

use std::{collections::BTreeSet, future::Future, time::Duration};

use axum::http::header;
use hmac::{Hmac, Mac};
use settle_relayer::query::{self, QueryError, StatusChange};
use sha2::Sha256;
use thiserror::Error;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{
    EVENT_PAYMENT_STATUS_CHANGED, Event, SIGNATURE_HEADER,
    store::{self, Due, NewEvent, Next},
};
use crate::{
    payments::{Payment, time},
    state::AppState,
};

/// Why a pass of the worker failed. What it committed before stays; the next pass resumes.
#[derive(Debug, Error)]
pub enum WebhookError {
    /// The API's tables could not be read or written.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The relayer's feed or instructions could not be read.
    #[error("reading the relayer: {0}")]
    Relayer(#[from] QueryError),
    /// A stored split does not compute (the relayer's checks should make this impossible).
    #[error("split of payment {payment}: {reason}")]
    Split {
        /// The payment.
        payment: Uuid,
        /// Why.
        reason: settle_contracts::split::SplitError,
    },
    /// An event could not be encoded.
    #[error("encoding an event: {0}")]
    Encode(#[from] serde_json::Error),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
}

/// How deliveries are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// How long one POST may take.
    pub timeout: Duration,
    /// Attempt `n` failed: the next waits `backoff_base * 2^n` (at most `max_backoff`).
    pub backoff_base: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// Attempts before a delivery is given up.
    pub max_attempts: u32,
    /// Changes read, and deliveries attempted, per pass.
    pub batch: u32,
    /// How long [`Worker::run`] waits after a pass that found nothing to do.
    pub poll_interval: Duration,
}

impl Default for DeliveryConfig {
    /// 10 s per POST, retries after 2, 4, 8, ... seconds (at most an hour), 10 attempts, 100 per
    /// pass, polling every second.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            backoff_base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            max_attempts: 10,
            batch: 100,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl DeliveryConfig {
    /// The wait after failed attempt number `attempt` (counting from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.backoff_base
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// The `Settle-Signature` value for `body` sent at Unix time `timestamp`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: u64, body: &str) -> String {
    // HMAC takes keys of any length, so this never fails; the fallback keeps the types honest.
    let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).map(|mut mac| {
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        mac.finalize().into_bytes()
    });
    match mac {
        Ok(bytes) => format!("t={timestamp},v1={}", alloy::hex::encode(bytes)),
        Err(_) => format!("t={timestamp},v1="),
    }
}

/// Delivers webhook events for one API process (several may run on one database).
#[derive(Debug, Clone)]
pub struct Worker {
    state: AppState,
    client: reqwest::Client,
    config: DeliveryConfig,
}

/// The result of one POST.
struct Outcome {
    status_code: Option<u16>,
    error: Option<String>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A transport failure in one line, with its root cause.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs_f64());
    }
    let mut text = if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    let mut root = None;
    while let Some(cause) = source {
        root = Some(cause.to_string());
        source = cause.source();
    }
    if let Some(root) = root {
        text.push_str(": ");
        text.push_str(&root);
    }
    text
}

impl Worker {
    /// A worker over `state` (the API's database and the relayer's tables in it).
    pub fn new(state: AppState, config: DeliveryConfig) -> Result<Self, WebhookError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("settle-webhooks/1")
            .build()?;
        Ok(Self {
            state,
            client,
            config,
        })
    }

    /// One pass: enqueue new status changes, then attempt the due deliveries. Answers how much it
    /// did (changes read plus attempts made); 0 when there was nothing to do.
    pub async fn deliver_once(&self) -> Result<usize, WebhookError> {
        let read = self.enqueue().await?;
        let attempted = self.attempt_due().await?;
        Ok(read.saturating_add(attempted))
    }

    /// Passes until `shutdown` resolves, pausing `poll_interval` whenever a pass finds nothing.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let idle = match self.deliver_once().await {
                Ok(done) => done == 0,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook pass failed; retrying");
                    true
                }
            };
            let pause = if idle {
                self.config.poll_interval
            } else {
                Duration::ZERO
            };
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Reads changes after the stored position and enqueues their events; answers how many it read.
    async fn enqueue(&self) -> Result<usize, WebhookError> {
        let pool = self.state.pool();
        let mut tx = pool.begin().await?;
        let cursor = store::lock_feed(&mut tx).await?;
        let changes = query::status_changes(&mut *tx, cursor, self.config.batch).await?;
        let Some(last) = changes.last().map(|c| c.cursor) else {
            return Ok(0);
        };
        let integrators: Vec<String> = changes
            .iter()
            .map(|c| c.integrator.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let endpoints = store::endpoints_of(&mut tx, &integrators).await?;
        let wanted: Vec<&StatusChange> = changes
            .iter()
            .filter(|c| endpoints.contains_key(&c.integrator))
            .collect();
        let ids: Vec<uuid::Uuid> = wanted
            .iter()
            .map(|c| c.instruction)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let instructions: std::collections::HashMap<Uuid, _> = query::instructions(pool, &ids)
            .await?
            .into_iter()
            .map(|i| (i.id, i))
            .collect();
        let mut events = Vec::with_capacity(wanted.len());
        for change in wanted {
            let (Some(instruction), Some(targets)) = (
                instructions.get(&change.instruction),
                endpoints.get(&change.integrator),
            ) else {
                continue;
            };
            let mut payment =
                Payment::from_instruction(instruction).map_err(|reason| WebhookError::Split {
                    payment: instruction.id,
                    reason,
                })?;
            // The event reports this transition, even if the payment has moved on since.
            payment.status = change.to.into();
            let event = Event {
                id: Uuid::new_v4(),
                kind: EVENT_PAYMENT_STATUS_CHANGED.to_owned(),
                created_at: time(&change.changed_at),
                previous_status: change.from.into(),
                payment,
            };
            events.push(NewEvent {
                id: event.id,
                event_type: EVENT_PAYMENT_STATUS_CHANGED,
                integrator: change.integrator.clone(),
                payment: change.instruction,
                payment_status: change.to.as_str(),
                body: serde_json::to_string(&event)?,
                endpoints: targets.clone(),
            });
        }
        store::enqueue(&mut tx, &events).await?;
        store::save_feed(&mut tx, last).await?;
        tx.commit().await?;
        if !events.is_empty() {
            tracing::debug!(events = events.len(), "webhook events enqueued");
        }
        Ok(changes.len())
    }

    /// Claims the due deliveries, POSTs them concurrently and records each outcome.
    async fn attempt_due(&self) -> Result<usize, WebhookError> {
        // A claim lasts past the POST's timeout, so it is not attempted twice at once.
        let lease = self
            .config
            .timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(5));
        let due =
            store::claim_due(self.state.pool(), self.config.batch, lease.as_secs_f64()).await?;
        let count = due.len();
        let mut posts = JoinSet::new();
        for delivery in due {
            let client = self.client.clone();
            let timeout = self.config.timeout;
            posts.spawn(async move {
                let outcome = post(&client, &delivery, timeout).await;
                (delivery, outcome)
            });
        }
        while let Some(joined) = posts.join_next().await {
            let (delivery, outcome) = match joined {
                Ok(done) => done,
                Err(e) => {
                    // The claim's lease makes the delivery due again.
                    tracing::error!(error = %e, "webhook post task failed");
                    continue;
                }
            };
            let attempt = u32::try_from(delivery.attempt).unwrap_or(u32::MAX);
            let delivered = outcome.error.is_none();
            let next = if delivered {
                Next::Delivered
            } else if attempt >= self.config.max_attempts {
                Next::GiveUp
            } else {
                Next::RetryAfter(self.config.backoff(attempt).as_secs_f64())
            };
            tracing::info!(
                delivery = %delivery.delivery,
                event = %delivery.event,
                attempt,
                status = ?outcome.status_code,
                error = outcome.error.as_deref().unwrap_or(""),
                ?next,
                "webhook attempt"
            );
            store::record(
                self.state.pool(),
                &delivery,
                outcome.status_code,
                outcome.error.as_deref(),
                next,
            )
            .await?;
        }
        Ok(count)
    }
}

/// One signed POST of a delivery's body.
async fn post(client: &reqwest::Client, due: &Due, timeout: Duration) -> Outcome {
    let sent = client
        .post(&due.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            SIGNATURE_HEADER,
            signature(&due.secret, unix_now(), &due.body),
        )
        .header("settle-event-id", due.event.to_string())
        .body(due.body.clone())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status();
            Outcome {
                status_code: Some(status.as_u16()),
                error: (!status.is_success()).then(|| format!("the endpoint answered {status}")),
            }
        }
        Err(e) => Outcome {
            status_code: None,
            error: Some(describe(&e, timeout)),
        },
    }
}

/// One pass with the default configuration (see [`Worker::deliver_once`]).
pub async fn deliver_once(state: &AppState) -> Result<usize, WebhookError> {
    Worker::new(state.clone(), DeliveryConfig::default())?
        .deliver_once()
        .await
}

/// Delivers with the default configuration until `shutdown` resolves (see [`Worker::run`]).
pub async fn run(state: AppState, shutdown: impl Future<Output = ()>) -> Result<(), WebhookError> {
    Worker::new(state, DeliveryConfig::default())?
        .run(shutdown)
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_two_seconds_and_is_capped() {
        let config = DeliveryConfig::default();
        assert_eq!(config.backoff(1), Duration::from_secs(2));
        assert_eq!(config.backoff(2), Duration::from_secs(4));
        assert_eq!(config.backoff(9), Duration::from_secs(512));
        assert_eq!(config.backoff(12), Duration::from_secs(3600));
        assert_eq!(config.backoff(200), Duration::from_secs(3600));
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 does not cover this framing; the value is pinned so a change is noticed.
        let value = signature("whsec_test", 1_700_000_000, "{\"a\":1}");
        assert!(value.starts_with("t=1700000000,v1="), "{value}");
        let hex = value.trim_start_matches("t=1700000000,v1=");
        assert_eq!(hex.len(), 64);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"whsec_test").expect("key");
        mac.update(b"1700000000.{\"a\":1}");
        assert_eq!(hex, alloy::hex::encode(mac.finalize().into_bytes()));
    }
}
