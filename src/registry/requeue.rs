//! When an EcrRegistry is reconciled again, as a pure function of one pass.

use std::time::Duration;

/// A spec or credentials error waits for a change of spec or Secret, with this
/// slow retry in case the fix is outside the watches (an IAM policy, say).
pub const SLOW_RETRY: Duration = Duration::from_secs(300);

#[derive(Debug, PartialEq)]
pub enum Requeue {
    /// Something is expected to clear by itself (a throttled call, a failed
    /// namespace, a conflict the user resolves): retry with per-object backoff,
    /// but no later than this (a refresh or re-assertion that is due): a lasting
    /// conflict in one namespace must not hold up the others.
    Backoff { at_latest: Option<Duration> },
    /// All done: come back when the token is due for a refresh.
    After(Duration),
}

/// What one pass found that decides the next one.
pub struct Pass {
    /// The token step failed with an error that fixes itself.
    pub transient_error: bool,
    /// The token step failed with an error that needs a fix (spec, IAM, Secret).
    pub lasting_error: bool,
    /// Some namespaces failed or conflict. Secrets are not watched, so a conflict
    /// the user resolves is only seen at the next try.
    pub namespace_failures: bool,
    /// When the token is due for a refresh.
    pub next_refresh: Option<jiff::Timestamp>,
    /// When the next managed secrets are due to be re-asserted.
    pub next_resync: Option<jiff::Timestamp>,
    pub now: jiff::Timestamp,
}

pub fn after(pass: &Pass) -> Requeue {
    let next = match (pass.next_refresh, pass.next_resync) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let until_next = next.map(|at| {
        let wait = at
            .duration_since(pass.now)
            .max(jiff::SignedDuration::from_secs(1));
        Duration::try_from(wait).unwrap_or(Duration::from_secs(1))
    });
    if pass.transient_error || pass.namespace_failures {
        return Requeue::Backoff {
            at_latest: until_next,
        };
    }
    match (until_next, pass.lasting_error) {
        (Some(wait), false) => Requeue::After(wait),
        // Another region's refresh (or a re-assertion) due sooner still comes first.
        (Some(wait), true) => Requeue::After(wait.min(SLOW_RETRY)),
        (None, _) => Requeue::After(SLOW_RETRY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass() -> Pass {
        let now = jiff::Timestamp::from_second(1_000).unwrap();
        Pass {
            transient_error: false,
            lasting_error: false,
            namespace_failures: false,
            next_refresh: Some(now + jiff::SignedDuration::from_secs(60)),
            next_resync: None,
            now,
        }
    }

    #[test]
    fn a_clean_pass_waits_for_the_refresh() {
        assert_eq!(after(&pass()), Requeue::After(Duration::from_secs(60)));
    }

    #[test]
    fn a_refresh_already_due_waits_one_second_not_zero() {
        let mut p = pass();
        p.next_refresh = Some(p.now - jiff::SignedDuration::from_secs(5));
        assert_eq!(after(&p), Requeue::After(Duration::from_secs(1)));
    }

    #[test]
    fn a_resync_due_before_the_refresh_comes_first() {
        let mut p = pass();
        p.next_resync = Some(p.now + jiff::SignedDuration::from_secs(10));
        assert_eq!(after(&p), Requeue::After(Duration::from_secs(10)));
        p.next_refresh = None;
        assert_eq!(after(&p), Requeue::After(Duration::from_secs(10)));
    }

    #[test]
    fn transient_errors_and_failed_namespaces_back_off() {
        let mut p = pass();
        p.transient_error = true;
        p.next_refresh = None;
        assert_eq!(after(&p), Requeue::Backoff { at_latest: None });
        let mut p = pass();
        p.namespace_failures = true;
        p.lasting_error = true;
        p.next_refresh = None;
        assert_eq!(after(&p), Requeue::Backoff { at_latest: None });
    }

    #[test]
    fn a_lasting_conflict_never_delays_the_next_refresh_or_reassertion() {
        let mut p = pass();
        p.namespace_failures = true;
        p.next_resync = Some(p.now + jiff::SignedDuration::from_secs(10));
        assert_eq!(
            after(&p),
            Requeue::Backoff {
                at_latest: Some(Duration::from_secs(10))
            }
        );
    }

    #[test]
    fn lasting_errors_retry_slowly_but_never_delay_another_region_s_refresh() {
        let mut p = pass();
        p.lasting_error = true;
        p.next_refresh = Some(p.now + jiff::SignedDuration::from_hours(1));
        assert_eq!(after(&p), Requeue::After(SLOW_RETRY));
        // One region denied, another due in a minute: back in a minute.
        p.next_refresh = Some(p.now + jiff::SignedDuration::from_secs(60));
        assert_eq!(after(&p), Requeue::After(Duration::from_secs(60)));
        let mut p = pass();
        p.next_refresh = None;
        assert_eq!(after(&p), Requeue::After(SLOW_RETRY));
    }
}
