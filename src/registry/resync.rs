//! Drift repair: what this process wrote, per namespace UID, and when each secret
//! is due to be re-asserted. Re-assertions are spread evenly over the resync
//! interval (each namespace has a stable phase), and batched so that a registry is
//! reconciled at most [`BATCHES`] times per interval for them.

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Re-assertion passes per interval at most.
pub const BATCHES: i64 = 60;

/// One namespace's secret as this process last wrote it.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    pub namespace: String,
    pub fingerprint: u64,
    /// When the secret is re-asserted (server-side apply of the same content: no
    /// storage write unless it drifted).
    pub due: Timestamp,
}

/// What one registry wrote, by namespace UID.
pub type Ledger = BTreeMap<String, Written>;

/// When a secret written `now` in the namespace `uid` is next due. The first
/// write lands on the namespace's phase within the interval, so namespaces written
/// together are re-asserted apart; later ones keep that spacing.
pub fn due_after_write(
    previous: Option<&Written>,
    uid: &str,
    now: Timestamp,
    interval: SignedDuration,
) -> Timestamp {
    match previous {
        Some(w) if w.due > now => w.due,
        Some(_) => now + interval,
        None => now + phase(uid, interval),
    }
}

/// The fingerprints of the secrets not yet due: the plan re-asserts all others.
pub fn fresh(ledger: &Ledger, now: Timestamp) -> BTreeMap<String, u64> {
    ledger
        .iter()
        .filter(|(_, w)| w.due > now)
        .map(|(uid, w)| (uid.clone(), w.fingerprint))
        .collect()
}

/// When to come back for the next batch of re-assertions, if any is recorded.
pub fn next_batch(ledger: &Ledger, now: Timestamp, interval: SignedDuration) -> Option<Timestamp> {
    let earliest = ledger.values().map(|w| w.due).min()?;
    let spacing = (interval / BATCHES as i32).max(SignedDuration::from_secs(1));
    Some(earliest.max(now + spacing))
}

/// A stable point in (0, interval] for a namespace.
fn phase(uid: &str, interval: SignedDuration) -> SignedDuration {
    let digest = Sha256::digest(uid.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 32 bytes"));
    let millis = interval.as_millis().max(1) as u64;
    SignedDuration::from_millis((n % millis) as i64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }
    const TEN_MIN: SignedDuration = SignedDuration::from_mins(10);

    fn written(due: Timestamp) -> Written {
        Written {
            namespace: "n".into(),
            fingerprint: 7,
            due,
        }
    }

    #[test]
    fn first_writes_are_spread_over_the_interval() {
        let now = t(1_000);
        let dues: Vec<Timestamp> = (0..1000)
            .map(|i| due_after_write(None, &format!("uid-{i}"), now, TEN_MIN))
            .collect();
        assert!(dues.iter().all(|d| *d > now && *d <= now + TEN_MIN));
        // Each tenth of the interval holds roughly a tenth of them.
        for slot in 0..10 {
            let from = now + TEN_MIN / 10 * slot;
            let to = from + TEN_MIN / 10;
            let n = dues.iter().filter(|d| **d > from && **d <= to).count();
            assert!((50..=150).contains(&n), "slot {slot}: {n}");
        }
    }

    #[test]
    fn a_due_secret_is_not_fresh_and_comes_back_one_interval_later() {
        let now = t(1_000);
        let ledger = Ledger::from([
            ("a".to_string(), written(t(900))),
            ("b".to_string(), written(t(2_000))),
        ]);
        assert_eq!(fresh(&ledger, now), BTreeMap::from([("b".to_string(), 7)]));
        assert_eq!(
            due_after_write(ledger.get("a"), "a", now, TEN_MIN),
            now + TEN_MIN
        );
        // Rewritten before it was due (a new token): the phase is kept.
        assert_eq!(
            due_after_write(ledger.get("b"), "b", now, TEN_MIN),
            t(2_000)
        );
    }

    #[test]
    fn batches_are_at_least_a_sixtieth_of_the_interval_apart() {
        let now = t(1_000);
        let ledger = Ledger::from([("a".to_string(), written(t(1_001)))]);
        assert_eq!(
            next_batch(&ledger, now, TEN_MIN),
            Some(now + SignedDuration::from_secs(10))
        );
        let ledger = Ledger::from([("a".to_string(), written(t(1_500)))]);
        assert_eq!(next_batch(&ledger, now, TEN_MIN), Some(t(1_500)));
        assert_eq!(next_batch(&Ledger::new(), now, TEN_MIN), None);
    }
}
