//! The regions of an EcrRegistry (spec.region or spec.regions, plus ECR Public
//! with spec.public): one token each, and how their tokens make one secret.
//!
//! Pure: [`serve`] turns the token step of every region into the Docker config to
//! write, the error to report and the status of each region.

use crate::aws::auth_token::{AuthToken, Password, TOKEN_LIFETIME, decode_authorization_token};
use crate::aws::docker_config::DockerConfig;
use crate::aws::identity::Identity;
use crate::aws::registry_hosts::{Partition, parse_registry_host, registry_hosts};
use crate::crd::ecr_registry::{EcrRegistrySpec, PUBLIC, RegionStatus};
use crate::error::Error;
use crate::registry::desired_secret::still_servable;
use crate::registry::token::TokenStep;
use crate::runtime::status::time;

/// ECR Public's one registry host.
pub const PUBLIC_HOST: &str = "public.ecr.aws";

/// The token step of one region, or of ECR Public (named [`PUBLIC`]).
pub struct RegionToken {
    pub name: String,
    pub step: TokenStep,
}

/// The names of the registry's regions in spec order, then [`PUBLIC`].
pub fn names(spec: &EcrRegistrySpec) -> Vec<String> {
    let mut names: Vec<String> = spec.regions().into_iter().map(String::from).collect();
    if spec.public {
        names.push(PUBLIC.to_string());
    }
    names
}

/// What the CRD's rules cannot say: one identity serves one partition, so the
/// regions must share one.
pub fn check(spec: &EcrRegistrySpec) -> Result<(), String> {
    let regions = spec.regions();
    let Some(first) = regions.first() else {
        return Ok(());
    };
    let partition = Partition::of_region(first);
    match regions
        .iter()
        .find(|r| Partition::of_region(r).id != partition.id)
    {
        None => Ok(()),
        Some(other) => Err(format!(
            "spec.regions: {first} (partition {}) and {other} (partition {}) are in different partitions, whose credentials are separate: use one EcrRegistry per partition",
            partition.id,
            Partition::of_region(other).id
        )),
    }
}

/// The identity that fetches region `name`'s token.
pub fn identity(base: &Identity, name: &str) -> Identity {
    if name == PUBLIC {
        base.for_public()
    } else {
        base.in_region(name)
    }
}

/// The registry hosts of region `name` for `accounts`.
pub fn hosts(spec: &EcrRegistrySpec, name: &str, accounts: &[String]) -> Vec<String> {
    if name == PUBLIC {
        vec![PUBLIC_HOST.to_string()]
    } else {
        registry_hosts(accounts, name, &spec.endpoints)
    }
}

/// What the tokens of every region make.
#[derive(Debug, Default)]
pub struct Served {
    /// The Docker config to write; None when no region has a token to serve.
    pub config: Option<DockerConfig>,
    /// Every host of every region (also of those without a token).
    pub hosts: Vec<String>,
    /// The token in the secret that expires first (it bounds the secret); when
    /// nothing is written, the last token to expire first, which the secrets
    /// written before still hold.
    pub earliest: Option<AuthToken>,
    /// The first region's error (with its name when there are several), or why
    /// the spec is unusable.
    pub error: Option<Error>,
    /// Each region's state for the status.
    pub regions: Vec<RegionStatus>,
}

/// Combines the token steps of the regions. A region whose refresh failed keeps
/// its last token while that is valid, so the others can still be written fresh;
/// but the secret is written at all only while some region's token is more than
/// the safety margin from expiry ([`still_servable`]), as with one region.
pub fn serve(
    spec: &EcrRegistrySpec,
    tokens: Vec<RegionToken>,
    prev: &[RegionStatus],
    now: jiff::Timestamp,
) -> Served {
    let accounts = if spec.registry_ids.is_empty() {
        tokens
            .iter()
            .find_map(|t| t.step.token.as_ref().and_then(|t| t.account.clone()))
            .into_iter()
            .collect()
    } else {
        spec.registry_ids.clone()
    };
    let regions = statuses(&tokens, prev);
    let private_token = tokens
        .iter()
        .any(|t| t.name != PUBLIC && t.step.token.is_some());
    let failed = tokens.iter().filter(|t| t.step.error.is_some()).count();
    // A region is named when it fails alone or for its own reason; a failure
    // every region shares (the spec, the credentials Secret) is reported once.
    let reasons: std::collections::BTreeSet<_> = tokens
        .iter()
        .filter_map(|t| t.step.error.as_ref().map(Error::reason))
        .collect();
    let name_region = tokens.len() > 1 && !(failed == tokens.len() && reasons.len() == 1);
    let servable = |t: &RegionToken| match (&t.step.token, &t.step.error) {
        (Some(_), None) => true,
        (Some(token), Some(e)) => !matches!(e, Error::InvalidSpec(_)) && still_servable(token, now),
        (None, _) => false,
    };
    let spec_error = tokens
        .iter()
        .any(|t| matches!(t.step.error, Some(Error::InvalidSpec(_))));
    let mut any_servable = !spec_error && tokens.iter().any(servable);
    let mut error = None;
    if private_token && accounts.is_empty() && failed == 0 {
        error = Some(Error::InvalidSpec(
            "spec.registryIds: the account of the credentials is unknown; list the registry account IDs".into(),
        ));
        any_servable = false;
    }
    let mut served = Served {
        regions,
        ..Served::default()
    };
    // With nothing written, the secrets in the cluster still hold the last tokens:
    // the status names the first of those to expire.
    let last = tokens
        .iter()
        .filter_map(|t| t.step.token.as_ref())
        .min_by_key(|t| t.expires_at)
        .cloned();
    let mut config = DockerConfig::default();
    for t in tokens {
        let hosts = hosts(spec, &t.name, &accounts);
        // Written: fresh tokens, and failed regions' last ones until they expire.
        let written = t
            .step
            .token
            .as_ref()
            .filter(|token| t.step.error.is_none() || token.expires_at > now);
        if let Some(token) = written.filter(|_| any_servable) {
            config.merge_token(token, &hosts);
            if served
                .earliest
                .as_ref()
                .is_none_or(|e| token.expires_at < e.expires_at)
            {
                served.earliest = Some(token.clone());
            }
        }
        served.hosts.extend(hosts);
        if let Some(e) = t.step.error
            && error.is_none()
        {
            error = Some(if name_region {
                Error::InRegion {
                    region: t.name,
                    others: failed - 1,
                    cause: Box::new(e),
                }
            } else {
                e
            });
        }
    }
    served.hosts.sort();
    served.hosts.dedup();
    served.config = any_servable.then_some(config);
    if served.config.is_none() {
        served.earliest = last;
    }
    served.error = error;
    served
}

/// Each region's state: its token's times, or the last status's without one.
fn statuses(tokens: &[RegionToken], prev: &[RegionStatus]) -> Vec<RegionStatus> {
    tokens
        .iter()
        .map(|t| {
            let before = prev.iter().find(|p| p.name == t.name);
            RegionStatus {
                name: t.name.clone(),
                expires_at: match &t.step.token {
                    Some(token) => Some(time(token.expires_at)),
                    None => before.and_then(|p| p.expires_at.clone()),
                },
                last_refresh_time: match &t.step.token {
                    Some(token) => Some(time(token.fetched_at)),
                    None => before.and_then(|p| p.last_refresh_time.clone()),
                },
                reason: t.step.error.as_ref().map(|e| e.reason().to_string()),
            }
        })
        .collect()
}

/// Region `name`'s token as a secret written earlier holds it, with the times of
/// its status: how a region that cannot be refreshed after a restart keeps its
/// still-valid entry (the cache is empty then).
pub fn token_from_secret(
    config: &DockerConfig,
    name: &str,
    prev: &RegionStatus,
) -> Option<AuthToken> {
    let (host, entry) = config.auths.iter().find(|(host, _)| {
        if name == PUBLIC {
            host.as_str() == PUBLIC_HOST
        } else {
            parse_registry_host(host).is_some_and(|e| e.region == name)
        }
    })?;
    let (username, password) = match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => (u.clone(), Password::new(p.clone())),
        _ => {
            let raw = entry.auth.as_deref()?;
            decode_authorization_token(raw).ok()?
        }
    };
    let expires_at = prev.expires_at.as_ref()?.0;
    let fetched_at = prev
        .last_refresh_time
        .as_ref()
        .map_or(expires_at - TOKEN_LIFETIME, |t| t.0);
    Some(AuthToken {
        username,
        password,
        account: parse_registry_host(host).map(|e| e.account),
        fetched_at,
        expires_at,
        expiry_adjusted: false,
    })
}

/// The printer column: the regions, each failing one with its reason.
pub fn summary(regions: &[RegionStatus]) -> Option<String> {
    let parts: Vec<String> = regions
        .iter()
        .map(|r| match &r.reason {
            Some(reason) => format!("{}({reason})", r.name),
            None => r.name.clone(),
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{ecr_registry, token};
    use jiff::{SignedDuration, Timestamp};

    fn spec(regions: &[&str], public: bool) -> EcrRegistrySpec {
        let mut spec = ecr_registry("reg").spec;
        spec.region = None;
        spec.regions = regions.iter().map(|r| r.to_string()).collect();
        spec.public = public;
        spec
    }

    fn ok(name: &str, fetched: Timestamp, password: &str) -> RegionToken {
        let mut t = token(fetched, SignedDuration::from_hours(12));
        t.password = crate::aws::auth_token::Password::new(password);
        RegionToken {
            name: name.into(),
            step: TokenStep {
                token: Some(t),
                ..TokenStep::default()
            },
        }
    }

    fn failing(mut t: RegionToken) -> RegionToken {
        t.step.error = Some(Error::Throttled {
            operation: "GetAuthorizationToken",
        });
        t
    }

    fn passwords(config: &DockerConfig) -> Vec<(String, String)> {
        config
            .auths
            .iter()
            .map(|(h, a)| (h.clone(), a.password.clone().unwrap()))
            .collect()
    }

    #[test]
    fn every_region_and_public_go_into_one_secret() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let s = spec(&["eu-west-1", "us-east-1"], true);
        assert_eq!(names(&s), ["eu-west-1", "us-east-1", "public"]);
        let served = serve(
            &s,
            vec![
                ok("eu-west-1", t0, "eu"),
                ok("us-east-1", t0 + SignedDuration::from_mins(1), "us"),
                ok("public", t0, "pub"),
            ],
            &[],
            t0,
        );
        assert!(served.error.is_none());
        assert_eq!(
            passwords(served.config.as_ref().unwrap()),
            [
                (
                    "123456789012.dkr.ecr.eu-west-1.amazonaws.com".into(),
                    "eu".into()
                ),
                (
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
                    "us".into()
                ),
                ("public.ecr.aws".into(), "pub".into()),
            ]
        );
        // The secret is bounded by the token that expires first.
        assert_eq!(served.earliest.unwrap().fetched_at, t0);
        assert_eq!(
            summary(&served.regions).unwrap(),
            "eu-west-1,us-east-1,public"
        );
    }

    #[test]
    fn a_failing_region_keeps_its_last_token_while_valid_and_is_named() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let s = spec(&["eu-west-1", "us-east-1"], false);
        let now = t0 + SignedDuration::from_hours(11) + SignedDuration::from_mins(50);
        let served = serve(
            &s,
            vec![
                ok("eu-west-1", now, "fresh"),
                failing(ok("us-east-1", t0, "old")),
            ],
            &[],
            now,
        );
        let config = served.config.unwrap();
        assert_eq!(
            passwords(&config)[1].1,
            "old",
            "ten minutes left: still written"
        );
        let e = served.error.unwrap();
        assert_eq!(e.reason(), "Throttled");
        assert!(
            e.to_string().starts_with("region us-east-1: AWS throttled"),
            "{e}"
        );
        assert_eq!(
            summary(&served.regions).unwrap(),
            "eu-west-1,us-east-1(Throttled)"
        );
        // Once expired it is left out; the fresh region is still written.
        let later = now + SignedDuration::from_mins(11);
        let served = serve(
            &s,
            vec![
                ok("eu-west-1", now, "fresh"),
                failing(ok("us-east-1", t0, "old")),
            ],
            &[],
            later,
        );
        assert_eq!(
            passwords(&served.config.unwrap()),
            [(
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com".into(),
                "fresh".into()
            )]
        );
        // Its hosts are still reported, and its last expiry.
        assert_eq!(served.hosts.len(), 2);
        assert!(served.regions[1].expires_at.is_some());
    }

    #[test]
    fn nothing_is_written_when_no_region_is_far_enough_from_expiry() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let s = spec(&["eu-west-1", "us-east-1"], false);
        let now = t0 + SignedDuration::from_hours(11) + SignedDuration::from_mins(45);
        let served = serve(
            &s,
            vec![
                failing(ok("eu-west-1", t0, "a")),
                failing(ok("us-east-1", t0, "b")),
            ],
            &[],
            now,
        );
        assert!(served.config.is_none());
        // The status still names the expiry of what the secrets hold.
        assert_eq!(served.earliest.as_ref().unwrap().fetched_at, t0);
        // Every region failing for one reason is reported once, unnamed.
        assert!(
            served
                .error
                .unwrap()
                .to_string()
                .starts_with("AWS throttled"),
            "one cause for all"
        );
        let mut denied = failing(ok("us-east-1", t0, "b"));
        denied.step.error = Some(Error::EcrAccessDenied {
            operation: "GetAuthorizationToken",
            detail: "no".into(),
        });
        let served = serve(
            &s,
            vec![failing(ok("eu-west-1", t0, "a")), denied],
            &[],
            now,
        );
        let e = served.error.unwrap().to_string();
        assert!(
            e.starts_with("region eu-west-1: AWS throttled") && e.contains("and 1 more"),
            "{e}"
        );
    }

    #[test]
    fn a_region_without_any_token_keeps_its_previous_status() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let s = spec(&["eu-west-1", "us-east-1"], false);
        let prev = vec![RegionStatus {
            name: "us-east-1".into(),
            expires_at: Some(time(t0)),
            last_refresh_time: None,
            reason: None,
        }];
        let none = RegionToken {
            name: "us-east-1".into(),
            step: TokenStep {
                error: Some(Error::Throttled {
                    operation: "GetAuthorizationToken",
                }),
                ..TokenStep::default()
            },
        };
        let served = serve(&s, vec![ok("eu-west-1", t0, "a"), none], &prev, t0);
        assert_eq!(served.regions[1].expires_at, Some(time(t0)));
        assert_eq!(passwords(served.config.as_ref().unwrap()).len(), 1);
    }

    #[test]
    fn public_alone_needs_no_account() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let s = spec(&[], true);
        let mut public = ok("public", t0, "pub");
        public.step.token.as_mut().unwrap().account = None;
        let served = serve(&s, vec![public], &[], t0);
        assert!(served.error.is_none());
        assert_eq!(served.hosts, ["public.ecr.aws"]);
    }

    #[test]
    fn a_region_s_token_is_read_back_from_a_written_secret() {
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let s = spec(&["eu-west-1", "us-east-1"], true);
        let served = serve(
            &s,
            vec![
                ok("eu-west-1", t0, "eu"),
                ok("us-east-1", t0, "us"),
                ok("public", t0, "pub"),
            ],
            &[],
            t0,
        );
        let config: DockerConfig = serde_json::from_str(&served.config.unwrap().to_json()).unwrap();
        for (i, (name, pw)) in [("eu-west-1", "eu"), ("us-east-1", "us"), ("public", "pub")]
            .into_iter()
            .enumerate()
        {
            let t = token_from_secret(&config, name, &served.regions[i]).unwrap();
            assert_eq!((t.username.as_str(), t.password.expose()), ("AWS", pw));
            assert_eq!(
                (t.fetched_at, t.expires_at),
                (t0, t0 + SignedDuration::from_hours(12))
            );
        }
        let unknown = RegionStatus {
            name: "ap-south-1".into(),
            ..served.regions[0].clone()
        };
        assert!(token_from_secret(&config, "ap-south-1", &unknown).is_none());
        let no_expiry = RegionStatus {
            expires_at: None,
            ..served.regions[0].clone()
        };
        assert!(token_from_secret(&config, "eu-west-1", &no_expiry).is_none());
    }

    #[test]
    fn regions_of_two_partitions_are_refused() {
        assert!(check(&spec(&["eu-west-1", "us-east-1"], false)).is_ok());
        let e = check(&spec(&["eu-west-1", "cn-north-1"], false)).unwrap_err();
        assert!(
            e.starts_with(
                "spec.regions: eu-west-1 (partition aws) and cn-north-1 (partition aws-cn)"
            ),
            "{e}"
        );
    }
}
