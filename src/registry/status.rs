//! The EcrRegistry's status as a pure function of the plan and what applying it did.

use crate::aws::auth_token::AuthToken;
use crate::crd::ecr_registry::{
    EcrRegistry, EcrRegistryStatus, NamespaceCounts, NamespaceFailure, RegionStatus,
};
use crate::error::Error;
use crate::registry::plan::Plan;
use crate::registry::regions;
use crate::runtime::conditions::{condition, find};
use crate::runtime::status::time;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use std::collections::BTreeSet;

/// At most this many failures are listed in the status.
pub const MAX_FAILURES: usize = 20;
pub const READY: &str = "Ready";

/// What applying a plan did.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    pub written: Vec<String>,
    pub removed: Vec<String>,
    pub failures: Vec<NamespaceFailure>,
}

pub struct StatusInput<'a> {
    pub registry: &'a EcrRegistry,
    /// Where the secrets are after this pass ([`crate::registry::record::next`]).
    pub managed: &'a BTreeSet<String>,
    pub plan: &'a Plan,
    pub outcome: &'a SyncOutcome,
    /// The token now in the secrets, if any.
    pub token: Option<&'a AuthToken>,
    /// The token is written into namespaces (after a failed refresh: it is still
    /// far enough from expiry).
    pub serving: bool,
    pub hosts: &'a [String],
    /// Each region's token state ([`crate::registry::regions::serve`]).
    pub regions: &'a [RegionStatus],
    pub next_refresh: Option<jiff::Timestamp>,
    /// Why no token could be fetched, or why the spec is unusable.
    pub error: Option<&'a Error>,
    pub now: jiff::Timestamp,
}

pub fn compute(input: &StatusInput<'_>) -> EcrRegistryStatus {
    let prev = input.registry.status.clone().unwrap_or_default();
    let plan = input.plan;
    let outcome = input.outcome;

    let managed = input.managed;

    let mut failures: Vec<NamespaceFailure> = plan
        .conflicts
        .iter()
        .chain(&outcome.failures)
        .cloned()
        .collect();
    failures.sort();
    let failed_count = failures.len();

    // Counted on the whole list: a failure past the listed ones is still a failure.
    let failed: BTreeSet<&str> = failures.iter().map(|f| f.namespace.as_str()).collect();
    let selected = plan.selected.len() as u32;
    let synced = plan
        .selected
        .iter()
        .filter(|ns| managed.contains(*ns) && !failed.contains(ns.as_str()))
        .count() as u32;
    failures.truncate(MAX_FAILURES);

    let counts = NamespaceCounts {
        selected,
        synced,
        summary: format!("{synced}/{selected}"),
    };
    let (status, reason, message) =
        ready_condition(input, &failures, failed_count, &counts, !managed.is_empty());
    let generation = input.registry.metadata.generation;
    EcrRegistryStatus {
        observed_generation: generation,
        conditions: vec![condition(
            &prev.conditions,
            READY,
            status,
            reason,
            message,
            generation,
            input.now,
        )],
        registries: if input.hosts.is_empty() {
            prev.registries
        } else {
            input.hosts.to_vec()
        },
        regions: input.regions.to_vec(),
        region_summary: regions::summary(input.regions),
        expires_at: input.token.map(|t| time(t.expires_at)).or(prev.expires_at),
        last_refresh_time: input
            .token
            .map(|t| time(t.fetched_at))
            .or(prev.last_refresh_time),
        next_refresh_time: input.next_refresh.map(time),
        namespaces: Some(counts),
        secret_name: (!managed.is_empty()).then(|| input.registry.secret_name()),
        // In the record, not the status (see record.rs).
        managed_namespaces: vec![],
        failures,
    }
}

/// Ready's status, reason and message: the token step's error first, then the
/// namespaces that failed, else Synced.
fn ready_condition(
    input: &StatusInput<'_>,
    failures: &[NamespaceFailure],
    failed_count: usize,
    counts: &NamespaceCounts,
    has_secrets: bool,
) -> (&'static str, String, String) {
    let (selected, synced) = (counts.selected, counts.synced);
    if let Some(e) = input.error {
        let message = format!("{e}{}", served(input, has_secrets));
        return ("False", e.reason().to_string(), message);
    }
    if failed_count == 0 {
        let message = format!(
            "secret {} holds a valid token in {synced} of {selected} selected namespaces",
            input.registry.secret_name()
        );
        return ("True", "Synced".to_string(), message);
    }
    let reasons: BTreeSet<&str> = failures.iter().map(|f| f.reason.as_str()).collect();
    let reason = match reasons.len() {
        1 => reasons.into_iter().next().unwrap_or_default().to_string(),
        _ => "PartialSync".to_string(),
    };
    let names: Vec<&str> = failures
        .iter()
        .take(5)
        .map(|f| f.namespace.as_str())
        .collect();
    let more = if failed_count > names.len() {
        ", ..."
    } else {
        ""
    };
    let message = format!(
        "{failed_count} of {selected} selected namespaces failed ({}{more}); see status.failures",
        names.join(", ")
    );
    ("False", reason, message)
}

/// What a failed pass still serves, for the Ready message.
fn served(input: &StatusInput<'_>, has_secrets: bool) -> String {
    match input.token {
        Some(t) if input.serving => format!(
            "; serving the last token to every selected namespace until it expires at {} (in {:#})",
            t.expires_at,
            t.expires_at
                .duration_since(input.now)
                .round(jiff::Unit::Second)
                .unwrap_or_default()
        ),
        Some(t) if t.expires_at > input.now && has_secrets => {
            format!("; existing secrets stay valid until {}", t.expires_at)
        }
        // Still named after it passed: the secrets are kept (a later success
        // replaces them), but pulls with them fail until then.
        Some(t) if has_secrets => format!(
            "; the existing secrets' token expired at {}: pulls with them fail until a token is fetched again",
            t.expires_at
        ),
        Some(_) => String::new(),
        None if matches!(input.error, Some(Error::InvalidSpec(_))) => String::new(),
        None => "; no token is cached (none was fetched since the operator started), so no namespace gets a secret until this is fixed".into(),
    }
}

/// The Ready condition of a status, if any.
pub fn ready(status: Option<&EcrRegistryStatus>) -> Option<&Condition> {
    find(&status?.conditions, READY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    fn registry() -> EcrRegistry {
        let mut r = test_support::ecr_registry("reg");
        r.status = Some(EcrRegistryStatus::default());
        r
    }

    fn set(names: &[String]) -> BTreeSet<String> {
        names.iter().cloned().collect()
    }

    /// Where the secrets were before the pass.
    fn managed() -> BTreeSet<String> {
        set(&["a".into(), "gone".into(), "old".into()])
    }

    fn token(now: jiff::Timestamp) -> AuthToken {
        test_support::token(now, crate::aws::auth_token::TOKEN_LIFETIME)
    }

    fn failed_pass(
        r: &EcrRegistry,
        plan: &Plan,
        token: Option<&AuthToken>,
        serving: bool,
        now: jiff::Timestamp,
    ) -> EcrRegistryStatus {
        compute(&StatusInput {
            registry: r,
            managed: &managed(),
            plan,
            outcome: &SyncOutcome::default(),
            token,
            serving,
            hosts: &[],
            regions: &[],
            next_refresh: None,
            error: Some(&Error::Throttled {
                operation: "GetAuthorizationToken",
            }),
            now,
        })
    }

    #[test]
    fn a_served_token_and_a_missing_one_are_named_in_ready() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let (r, plan) = (registry(), Plan::default());
        let t = token(now);
        let serving = failed_pass(&r, &plan, Some(&t), true, now);
        let message = &ready(Some(&serving)).unwrap().message;
        assert!(message.starts_with("AWS throttled"), "{message}");
        assert!(message.contains("serving the last token"), "{message}");
        assert!(message.contains("(in 12h)"), "{message}");
        let none = failed_pass(&r, &plan, None, false, now);
        let message = &ready(Some(&none)).unwrap().message;
        assert!(message.contains("no token is cached"), "{message}");
    }

    #[test]
    fn synced_never_counts_a_failure_beyond_the_listed_ones() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let all: Vec<String> = (0..30).map(|i| format!("ns-{i:02}")).collect();
        let r = registry();
        let plan = Plan {
            selected: all.clone(),
            keep: all.clone(),
            ..Default::default()
        };
        let outcome = SyncOutcome {
            failures: all[..25]
                .iter()
                .map(|ns| NamespaceFailure {
                    namespace: ns.clone(),
                    reason: "ApiError".into(),
                    message: "boom".into(),
                })
                .collect(),
            ..Default::default()
        };
        let t = token(now);
        let s = compute(&StatusInput {
            registry: &r,
            managed: &set(&all),
            plan: &plan,
            outcome: &outcome,
            token: Some(&t),
            serving: true,
            hosts: &["h".into()],
            regions: &[],
            next_refresh: None,
            error: None,
            now,
        });
        assert_eq!(s.failures.len(), MAX_FAILURES);
        assert_eq!(s.namespaces.unwrap().summary, "5/30");
    }

    #[test]
    fn synced_status_counts_and_leaves_the_record_out() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let r = registry();
        let plan = Plan {
            selected: vec!["a".into(), "b".into()],
            forget: vec!["gone".into()],
            ..Default::default()
        };
        let outcome = SyncOutcome {
            written: vec!["b".into()],
            removed: vec!["old".into()],
            ..Default::default()
        };
        let t = token(now);
        let next = crate::registry::record::next(&managed(), &plan, &outcome);
        assert_eq!(next, set(&["a".into(), "b".into()]));
        let s = compute(&StatusInput {
            registry: &r,
            managed: &next,
            plan: &plan,
            outcome: &outcome,
            token: Some(&t),
            serving: false,
            hosts: &["h".into()],
            regions: &[],
            next_refresh: None,
            error: None,
            now,
        });
        assert!(
            s.managed_namespaces.is_empty(),
            "in the record, not the status"
        );
        assert_eq!(s.namespaces.as_ref().unwrap().summary, "2/2");
        let ready = ready(Some(&s)).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Synced")
        );
        assert_eq!(s.observed_generation, Some(3));
        assert!(!format!("{s:?}").contains("pw"));
    }

    #[test]
    fn aws_failure_says_the_secrets_stay_valid_and_keeps_the_transition_time() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let mut r = registry();
        let plan = Plan {
            selected: vec!["a".into()],
            keep: vec!["a".into()],
            ..Default::default()
        };
        let t = token(now);
        let err = Error::Throttled {
            operation: "GetAuthorizationToken",
        };
        let input = |r: &EcrRegistry, at| {
            compute(&StatusInput {
                registry: r,
                managed: &managed(),
                plan: &plan,
                outcome: &SyncOutcome::default(),
                token: Some(&t),
                serving: false,
                hosts: &[],
                regions: &[],
                next_refresh: None,
                error: Some(&err),
                now: at,
            })
        };
        let first = input(&r, now);
        let c = ready(Some(&first)).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "Throttled")
        );
        assert!(c.message.contains("stay valid until"), "{}", c.message);
        r.status = Some(first.clone());
        let later = input(&r, now + jiff::SignedDuration::from_secs(60));
        assert_eq!(
            first, later,
            "an unchanged state gives an equal status: no write"
        );
        // Past the token's expiry the message still names it.
        let expired = input(&r, now + jiff::SignedDuration::from_hours(13));
        let c = ready(Some(&expired)).unwrap();
        assert!(
            c.message
                .contains(&format!("token expired at {}", t.expires_at)),
            "{}",
            c.message
        );
    }

    #[test]
    fn failures_are_bounded_and_named() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let r = registry();
        let selected: Vec<String> = (0..30).map(|i| format!("ns{i:02}")).collect();
        let plan = Plan {
            selected: selected.clone(),
            ..Default::default()
        };
        let outcome = SyncOutcome {
            failures: selected
                .iter()
                .map(|ns| NamespaceFailure {
                    namespace: ns.clone(),
                    reason: "SecretConflict".into(),
                    message: "m".into(),
                })
                .collect(),
            ..Default::default()
        };
        let s = compute(&StatusInput {
            registry: &r,
            managed: &managed(),
            plan: &plan,
            outcome: &outcome,
            token: None,
            serving: false,
            hosts: &[],
            regions: &[],
            next_refresh: None,
            error: None,
            now,
        });
        assert_eq!(s.failures.len(), MAX_FAILURES);
        let c = ready(Some(&s)).unwrap();
        assert_eq!(c.reason, "SecretConflict");
        assert!(c.message.starts_with("30 of 30"), "{}", c.message);
    }
}
