//! Per-key token buckets: `rate` requests per second on average, bursts up to `burst`.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Instant,
};

use uuid::Uuid;

use crate::problem::{ApiError, ErrorCode};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens in millionths.
    micro_tokens: u64,
    refilled: Instant,
}

/// The limiter shared by all requests.
#[derive(Debug)]
pub struct RateLimiter {
    rate_per_sec: u64,
    burst: u64,
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

const MICRO: u64 = 1_000_000;

impl RateLimiter {
    /// `rate_per_sec` requests per second per key, up to `burst` at once (both at least 1).
    pub fn new(rate_per_sec: u64, burst: u64) -> Self {
        Self {
            rate_per_sec: rate_per_sec.max(1),
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how many seconds until one is there.
    pub fn check(&self, key: Uuid) -> Result<(), ApiError> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: Uuid, now: Instant) -> Result<(), ApiError> {
        let full = self.burst.saturating_mul(MICRO);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(key).or_insert(Bucket {
            micro_tokens: full,
            refilled: now,
        });
        let elapsed_us = u64::try_from(now.saturating_duration_since(bucket.refilled).as_micros())
            .unwrap_or(u64::MAX);
        // rate tokens per second = rate micro-tokens per microsecond.
        let refill = elapsed_us.saturating_mul(self.rate_per_sec);
        bucket.micro_tokens = bucket.micro_tokens.saturating_add(refill).min(full);
        bucket.refilled = now;
        if bucket.micro_tokens >= MICRO {
            bucket.micro_tokens = bucket.micro_tokens.saturating_sub(MICRO);
            return Ok(());
        }
        let missing = MICRO.saturating_sub(bucket.micro_tokens);
        let wait_us = missing.div_ceil(self.rate_per_sec);
        let seconds = wait_us.div_ceil(MICRO).max(1);
        Err(ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "this key may make {} requests per second (bursts of {}); retry after {seconds} s",
                self.rate_per_sec, self.burst
            ),
        )
        .retry_after(seconds))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = RateLimiter::new(2, 3);
        let key = Uuid::new_v4();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(key, start).is_ok());
        }
        let refused = limiter.check_at(key, start).expect_err("over the burst");
        assert_eq!(refused.code(), ErrorCode::RateLimited);
        // Half a second later one token (at 2/s) is back.
        let later = start.checked_add(Duration::from_millis(500)).expect("time");
        assert!(limiter.check_at(key, later).is_ok());
        assert!(limiter.check_at(key, later).is_err());
        // Other keys have their own bucket.
        assert!(limiter.check_at(Uuid::new_v4(), start).is_ok());
    }
}
