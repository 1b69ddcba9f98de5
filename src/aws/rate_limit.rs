//! A client-side limit on GetAuthorizationToken calls per (account, region),
//! shared by every registry and tenant of the process: ECR allows about 20 calls
//! a second per account and region, and a thousand tenants refreshing at once
//! must queue below that rather than be throttled.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

pub struct TokenRate {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl TokenRate {
    /// At most `per_second` calls in any second per key: evenly spaced (no
    /// burst), 5% further apart than 1/`per_second`, so that the jitter of the
    /// network never lets one more call into a second as the server counts it.
    pub fn new(per_second: NonZeroU32) -> Self {
        let period = Duration::from_secs(1).mul_f64(1.05) / per_second.get();
        let quota = Quota::with_period(period)
            .expect("a non-zero rate has a non-zero period")
            .allow_burst(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// Waits until a call for `key` (see `Identity::rate_key`) is within the rate.
    pub async fn wait(&self, key: &str) {
        self.limiter.until_key_ready(&key.to_string()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_of_one_key_are_spaced_and_keys_do_not_wait_for_each_other() {
        let rate = TokenRate::new(NonZeroU32::new(20).unwrap());
        let start = std::time::Instant::now();
        for _ in 0..5 {
            rate.wait("a|eu-west-1").await;
        }
        // Five calls at 20/s: four gaps of more than 50 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
        let other = std::time::Instant::now();
        rate.wait("b|eu-west-1").await;
        rate.wait("a|us-east-1").await;
        assert!(
            other.elapsed() < Duration::from_millis(40),
            "{:?}",
            other.elapsed()
        );
    }
}
