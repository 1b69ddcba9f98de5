//! Per-object exponential backoff with jitter (kube-runtime has none built in).

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const MAX: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct Backoffs(Mutex<HashMap<String, ExponentialBackoff>>);

impl Backoffs {
    /// The next wait for `key`: 2 s, doubling with jitter, capped at 5 minutes.
    pub fn next(&self, key: &str) -> Duration {
        let mut all = self.0.lock().expect("backoff lock");
        let backoff = all.entry(key.to_string()).or_insert_with(|| {
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(2))
                .with_max_delay(MAX)
                .with_jitter()
                .without_max_times()
                .build()
        });
        backoff.next().unwrap_or(MAX)
    }

    /// `key` succeeded: its next failure starts from the shortest wait again.
    pub fn reset(&self, key: &str) {
        self.0.lock().expect("backoff lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_resets() {
        let b = Backoffs::default();
        let first = b.next("a");
        assert!(first <= Duration::from_secs(4), "{first:?}");
        let later: Vec<Duration> = (0..20).map(|_| b.next("a")).collect();
        assert!(later.iter().all(|d| *d <= MAX * 2), "{later:?}");
        assert!(later.last().unwrap() >= &Duration::from_secs(60));
        b.reset("a");
        assert!(b.next("a") <= Duration::from_secs(4));
    }
}
