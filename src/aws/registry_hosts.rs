//! Registry host names per region, partition and endpoint variant.
//!
//! Everything the operator knows about the AWS partitions is in [`PARTITIONS`]:
//! how a region is recognised, the DNS suffixes of the registry hosts, which
//! endpoint variants ECR has there and the partition's name in ARNs. The CRD's
//! region and role-ARN patterns (src/crd/ecr_registry.rs) are checked against it by
//! unit tests, and the tests below check it against the endpoints the AWS SDK's own
//! rules produce for ECR.

use crate::crd::ecr_registry::Endpoint;
use regex::Regex;
use std::sync::LazyLock;

/// One AWS partition, as the SDK's partitions.json (and ECR's endpoints) describe it.
#[derive(Debug, PartialEq, Eq)]
pub struct Partition {
    /// The partition's ID, which is also its name in ARNs: `arn:<id>:iam::…`.
    pub id: &'static str,
    /// How the SDK recognises the partition's regions (partitions.json `regionRegex`).
    /// A region that matches none belongs to `aws`, as in the SDK.
    pub region_regex: &'static str,
    /// Regions of the partition, the first being the example in messages and tests.
    pub regions: &'static [&'static str],
    /// DNS suffix of the Standard and Fips hosts (partitions.json `dnsSuffix`):
    /// `<account>.dkr.ecr[-fips].<region>.<suffix>`.
    pub dns_suffix: &'static str,
    /// Whether ECR has Fips registry hosts here.
    pub fips: bool,
    /// DNS suffix of ECR's dual-stack registry hosts,
    /// `<account>.dkr-ecr[-fips].<region>.<suffix>`, where ECR has them. It is the
    /// SDK's `dualStackDnsSuffix` with `on.` in place of `api.` (the API's dual-stack
    /// host is `ecr.<region>.api.aws`, the registry's `<account>.dkr-ecr.<region>.on.aws`).
    pub dual_stack_suffix: Option<&'static str>,
}

/// Every partition. Fips is left out where ECR publishes no FIPS endpoint (China),
/// although the SDK's rules would build a name; DualStack is offered only where
/// ECR documents its registry's dual-stack host name.
pub const PARTITIONS: &[Partition] = &[
    Partition {
        id: "aws",
        region_regex: r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$",
        regions: &["us-east-1", "eu-west-1", "ap-southeast-7", "mx-central-1"],
        dns_suffix: "amazonaws.com",
        fips: true,
        dual_stack_suffix: Some("on.aws"),
    },
    Partition {
        id: "aws-cn",
        region_regex: r"^cn\-\w+\-\d+$",
        regions: &["cn-north-1", "cn-northwest-1"],
        dns_suffix: "amazonaws.com.cn",
        fips: false,
        dual_stack_suffix: Some("on.amazonwebservices.com.cn"),
    },
    Partition {
        id: "aws-us-gov",
        region_regex: r"^us\-gov\-\w+\-\d+$",
        regions: &["us-gov-west-1", "us-gov-east-1"],
        dns_suffix: "amazonaws.com",
        fips: true,
        dual_stack_suffix: Some("on.aws"),
    },
    Partition {
        id: "aws-iso",
        region_regex: r"^us\-iso\-\w+\-\d+$",
        regions: &["us-iso-east-1", "us-iso-west-1"],
        dns_suffix: "c2s.ic.gov",
        fips: true,
        dual_stack_suffix: None,
    },
    Partition {
        id: "aws-iso-b",
        region_regex: r"^us\-isob\-\w+\-\d+$",
        regions: &["us-isob-east-1", "us-isob-west-1"],
        dns_suffix: "sc2s.sgov.gov",
        fips: true,
        dual_stack_suffix: None,
    },
    Partition {
        id: "aws-iso-e",
        region_regex: r"^eu\-isoe\-\w+\-\d+$",
        regions: &["eu-isoe-west-1"],
        dns_suffix: "cloud.adc-e.uk",
        fips: true,
        dual_stack_suffix: None,
    },
    Partition {
        id: "aws-iso-f",
        region_regex: r"^us\-isof\-\w+\-\d+$",
        regions: &["us-isof-south-1", "us-isof-east-1"],
        dns_suffix: "csp.hci.ic.gov",
        fips: true,
        dual_stack_suffix: None,
    },
    Partition {
        id: "aws-eusc",
        region_regex: r"^eusc\-(de)\-\w+\-\d+$",
        regions: &["eusc-de-east-1"],
        dns_suffix: "amazonaws.eu",
        fips: true,
        dual_stack_suffix: None,
    },
];

static REGION_REGEXES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    PARTITIONS
        .iter()
        .map(|p| Regex::new(p.region_regex).expect("valid regionRegex"))
        .collect()
});

impl Partition {
    /// The partition of `region`: the one whose regionRegex matches, else `aws` (the
    /// SDK's fallback for regions it does not know).
    pub fn of_region(region: &str) -> &'static Partition {
        PARTITIONS
            .iter()
            .zip(REGION_REGEXES.iter())
            .find(|(_, re)| re.is_match(region))
            .map_or(&PARTITIONS[0], |(p, _)| p)
    }

    /// Whether ECR has `endpoint`'s host names in this partition.
    pub fn offers(&self, endpoint: Endpoint) -> bool {
        match endpoint {
            Endpoint::Standard => true,
            Endpoint::Fips => self.fips,
            Endpoint::DualStack => self.dual_stack_suffix.is_some(),
        }
    }

    /// The DNS suffix of one host variant, None where ECR has no such host here.
    fn suffix(&self, fips: bool, dual_stack: bool) -> Option<&'static str> {
        if fips && !self.fips {
            return None;
        }
        if dual_stack {
            self.dual_stack_suffix
        } else {
            Some(self.dns_suffix)
        }
    }
}

/// Why `endpoint` cannot be used in `region`, or None when it can: a message for
/// the CLI, in the words of the CRD's validation.
pub fn unsupported_endpoint(region: &str, endpoint: Endpoint) -> Option<String> {
    let p = Partition::of_region(region);
    if p.offers(endpoint) {
        return None;
    }
    let others: Vec<&str> = [Endpoint::Standard, Endpoint::Fips, Endpoint::DualStack]
        .into_iter()
        .filter(|e| p.offers(*e))
        .map(|e| match e {
            Endpoint::Standard => "Standard",
            Endpoint::Fips => "Fips",
            Endpoint::DualStack => "DualStack",
        })
        .collect();
    Some(format!(
        "{endpoint:?} endpoints of ECR do not exist in {region} (partition {}); use {}",
        p.id,
        others.join(" or ")
    ))
}

/// The registry host of `account` in `region` for one endpoint variant, None where
/// ECR has no such host (Fips in China; DualStack in the ISO and EUSC partitions).
pub fn registry_host(account: &str, region: &str, endpoint: Endpoint) -> Option<String> {
    let (fips, dual_stack) = match endpoint {
        Endpoint::Standard => (false, false),
        Endpoint::Fips => (true, false),
        Endpoint::DualStack => (false, true),
    };
    variant_host(account, region, fips, dual_stack)
}

/// The one shape of host names: `dkr.ecr`, `dkr.ecr-fips` under the partition's
/// suffix; `dkr-ecr`, `dkr-ecr-fips` under its dual-stack suffix.
fn variant_host(account: &str, region: &str, fips: bool, dual_stack: bool) -> Option<String> {
    let suffix = Partition::of_region(region).suffix(fips, dual_stack)?;
    let service = match (fips, dual_stack) {
        (false, false) => "dkr.ecr",
        (true, false) => "dkr.ecr-fips",
        (false, true) => "dkr-ecr",
        (true, true) => "dkr-ecr-fips",
    };
    Some(format!("{account}.{service}.{region}.{suffix}"))
}

/// A private ECR registry host taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrHost {
    /// The registry ID: the 12-digit account.
    pub account: String,
    pub region: String,
    pub fips: bool,
    pub dual_stack: bool,
}

/// Reads an ECR registry host (no port, no scheme): `<account>.dkr.ecr.<region>.amazonaws.com`,
/// `.dkr.ecr-fips.`, `.amazonaws.com.cn`, the other partitions' suffixes, and the
/// dual-stack `<account>.dkr-ecr.<region>.on.aws` (and `dkr-ecr-fips`). A host of
/// another shape, whose suffix is not its region's partition's, or of a variant the
/// partition does not have, is None.
pub fn parse_registry_host(host: &str) -> Option<EcrHost> {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let (account, rest) = host.split_once('.')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (fips, dual_stack, rest) = [
        ("dkr.ecr.", false, false),
        ("dkr.ecr-fips.", true, false),
        ("dkr-ecr.", false, true),
        ("dkr-ecr-fips.", true, true),
    ]
    .into_iter()
    .find_map(|(prefix, fips, ds)| rest.strip_prefix(prefix).map(|r| (fips, ds, r)))?;
    let (region, _) = rest.split_once('.')?;
    let parts: Vec<&str> = region.split('-').collect();
    let region_ok = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit());
    // The suffix must be the one this region's partition has: built from the same
    // table as the hosts the operator writes.
    (region_ok && variant_host(account, region, fips, dual_stack).as_deref() == Some(host.as_str()))
        .then(|| EcrHost {
            account: account.to_string(),
            region: region.to_string(),
            fips,
            dual_stack,
        })
}

/// Every host to write: each account with each endpoint variant, sorted and unique.
/// A variant the region's partition does not have is left out: the CRD refuses it,
/// and [`unsupported_endpoint`] says why.
pub fn registry_hosts(accounts: &[String], region: &str, endpoints: &[Endpoint]) -> Vec<String> {
    let mut hosts: Vec<String> = accounts
        .iter()
        .flat_map(|a| {
            endpoints
                .iter()
                .filter_map(move |e| registry_host(a, region, *e))
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The account ID in an ECR proxy endpoint such as `https://123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
pub fn account_of_proxy_endpoint(proxy_endpoint: &str) -> Option<String> {
    let host = proxy_endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let account = host.split('.').next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_follow_the_partition() {
        let a = "123456789012";
        let host = |region, e| registry_host(a, region, e);
        let cases = [
            (
                "eu-west-1",
                Endpoint::Standard,
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            ),
            (
                "cn-north-1",
                Endpoint::Standard,
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
            ),
            (
                "us-gov-west-1",
                Endpoint::Fips,
                "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
            ),
            (
                "us-east-1",
                Endpoint::DualStack,
                "123456789012.dkr-ecr.us-east-1.on.aws",
            ),
            (
                "cn-northwest-1",
                Endpoint::DualStack,
                "123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn",
            ),
            (
                "us-iso-east-1",
                Endpoint::Standard,
                "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
            ),
            (
                "us-isob-east-1",
                Endpoint::Fips,
                "123456789012.dkr.ecr-fips.us-isob-east-1.sc2s.sgov.gov",
            ),
            (
                "eu-isoe-west-1",
                Endpoint::Standard,
                "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
            ),
            (
                "us-isof-south-1",
                Endpoint::Standard,
                "123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov",
            ),
            (
                "us-isof-east-1",
                Endpoint::Fips,
                "123456789012.dkr.ecr-fips.us-isof-east-1.csp.hci.ic.gov",
            ),
            (
                "eusc-de-east-1",
                Endpoint::Standard,
                "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
            ),
        ];
        for (region, e, want) in cases {
            assert_eq!(host(region, e).as_deref(), Some(want), "{region} {e:?}");
        }
        // No host where ECR has no such endpoint.
        for (region, e) in [
            ("cn-north-1", Endpoint::Fips),
            ("us-iso-east-1", Endpoint::DualStack),
            ("us-isob-east-1", Endpoint::DualStack),
            ("eu-isoe-west-1", Endpoint::DualStack),
            ("us-isof-south-1", Endpoint::DualStack),
            ("eusc-de-east-1", Endpoint::DualStack),
        ] {
            assert_eq!(host(region, e), None, "{region} {e:?}");
            let why = unsupported_endpoint(region, e).unwrap();
            assert!(
                why.contains(region) && why.contains("use Standard"),
                "{why}"
            );
        }
        assert_eq!(unsupported_endpoint("us-east-1", Endpoint::DualStack), None);
        assert_eq!(
            unsupported_endpoint("cn-north-1", Endpoint::Fips).as_deref(),
            Some(
                "Fips endpoints of ECR do not exist in cn-north-1 (partition aws-cn); use Standard or DualStack"
            )
        );
        assert_eq!(
            registry_hosts(
                &[a.to_string()],
                "eusc-de-east-1",
                &[Endpoint::Standard, Endpoint::DualStack]
            ),
            ["123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu"]
        );
    }

    #[test]
    fn regions_fall_in_their_partition() {
        for p in PARTITIONS {
            for r in p.regions {
                assert_eq!(Partition::of_region(r).id, p.id, "{r}");
            }
        }
        // As in the SDK, a region of no known partition is taken for an aws one.
        assert_eq!(Partition::of_region("nz-north-1").id, "aws");
        // The table's IDs are unique, and so are the example regions.
        let mut ids: Vec<&str> = PARTITIONS.iter().map(|p| p.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), PARTITIONS.len());
    }

    #[test]
    fn every_account_times_every_endpoint_sorted_and_unique() {
        let accounts = vec!["210987654321".to_string(), "123456789012".to_string()];
        let hosts = registry_hosts(
            &accounts,
            "us-east-1",
            &[Endpoint::Standard, Endpoint::Fips, Endpoint::Standard],
        );
        assert_eq!(
            hosts,
            vec![
                "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                "210987654321.dkr.ecr-fips.us-east-1.amazonaws.com",
                "210987654321.dkr.ecr.us-east-1.amazonaws.com",
            ]
        );
    }

    #[test]
    fn ecr_hosts_are_parsed_in_every_shape() {
        let parsed =
            |h: &str| parse_registry_host(h).map(|e| (e.account, e.region, e.fips, e.dual_stack));
        let a = "123456789012".to_string();
        let r = |s: &str| s.to_string();
        assert_eq!(
            parsed("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            Some((a.clone(), r("eu-west-1"), false, false))
        );
        assert_eq!(
            parsed("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
            Some((a.clone(), r("us-gov-west-1"), true, false))
        );
        assert_eq!(
            parsed("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            Some((a.clone(), r("cn-north-1"), false, false))
        );
        assert_eq!(
            parsed("123456789012.dkr-ecr.us-east-1.on.aws"),
            Some((a.clone(), r("us-east-1"), false, true))
        );
        assert_eq!(
            parsed("123456789012.dkr-ecr-fips.us-east-1.on.aws"),
            Some((a.clone(), r("us-east-1"), true, true))
        );
        assert_eq!(
            parsed("123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn"),
            Some((a.clone(), r("cn-northwest-1"), false, true))
        );
        assert_eq!(
            parsed("123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov"),
            Some((a.clone(), r("us-iso-east-1"), false, false))
        );
        // Case and a trailing dot do not matter.
        assert_eq!(
            parsed("123456789012.DKR.ECR.eu-west-1.AmazonAWS.com."),
            Some((a.clone(), r("eu-west-1"), false, false))
        );
        // Every host the operator writes parses back to its parts.
        for region in PARTITIONS.iter().flat_map(|p| p.regions.iter()) {
            for e in [Endpoint::Standard, Endpoint::Fips, Endpoint::DualStack] {
                let Some(h) = registry_host(&a, region, e) else {
                    continue;
                };
                let p = parse_registry_host(&h).unwrap_or_else(|| panic!("{h}"));
                assert_eq!(
                    (p.account.as_str(), p.region.as_str(), p.fips, p.dual_stack),
                    (
                        a.as_str(),
                        *region,
                        e == Endpoint::Fips,
                        e == Endpoint::DualStack
                    )
                );
            }
        }
        for not_ecr in [
            "registry.example",
            "127.0.0.1:5000",
            "12345678901.dkr.ecr.eu-west-1.amazonaws.com",
            "1234567890123.dkr.ecr.eu-west-1.amazonaws.com",
            "12345678901x.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example",
            "123456789012.dkr.ecr.eu-west-1.example.com",
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.cn",
            "123456789012.dkr.ecr.eu-west.amazonaws.com",
            "123456789012.dkr.ecr..amazonaws.com",
            "123456789012.dkr.ecr.eu_west-1.amazonaws.com",
            "123456789012.ecr.eu-west-1.amazonaws.com",
            "public.ecr.aws",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443",
            // Variants ECR does not have in the partition, and the wrong partition's suffix.
            "123456789012.dkr.ecr-fips.cn-north-1.amazonaws.com.cn",
            "123456789012.dkr-ecr.us-iso-east-1.on.aws",
            "123456789012.dkr-ecr.eusc-de-east-1.on.aws",
            "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-isof-south-1.c2s.ic.gov",
        ] {
            assert_eq!(parse_registry_host(not_ecr), None, "{not_ecr}");
        }
    }

    #[test]
    fn account_is_read_from_the_proxy_endpoint() {
        assert_eq!(
            account_of_proxy_endpoint("https://123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            Some("123456789012".into())
        );
        assert_eq!(account_of_proxy_endpoint("https://localhost:5000"), None);
    }

    /// The host of ECR's API endpoint that the AWS SDK's own endpoint rules give
    /// for `region` and the variant, or the SDK's error.
    async fn sdk_api_host(region: &str, fips: bool, dual_stack: bool) -> Result<String, String> {
        use aws_sdk_ecr::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        let params = Params::builder()
            .region(region)
            .use_fips(fips)
            .use_dual_stack(dual_stack)
            .build()
            .map_err(|e| e.to_string())?;
        let endpoint = DefaultResolver::new()
            .resolve_endpoint(&params)
            .await
            .map_err(|e| e.to_string())?;
        let url = endpoint.url();
        let host = url.strip_prefix("https://").unwrap_or(url);
        Ok(host.trim_end_matches('/').to_string())
    }

    /// What follows `.<region>.` in a host.
    fn after_region<'a>(host: &'a str, region: &str) -> Option<&'a str> {
        host.split_once(&format!(".{region}.")).map(|(_, s)| s)
    }

    /// Every partition, region and variant of the table against the SDK's endpoint
    /// rules for ECR. Where the table has a registry host, the SDK has an API
    /// endpoint in the same variant whose DNS suffix is the registry's: the same for
    /// Standard and Fips (`api.ecr[-fips].<region>.<suffix>`); for dual-stack the
    /// API is `ecr[-fips].<region>.api.<x>` and the registry `on.<x>`. Where the SDK
    /// refuses a variant, the table has no host. Nothing here is copied from the
    /// SDK: every expected suffix comes from what its resolver returns.
    #[tokio::test]
    async fn suffixes_agree_with_the_sdk_endpoint_rules() {
        let a = "123456789012";
        let mut seen = Vec::new();
        let mut wrong = Vec::new();
        for p in PARTITIONS {
            for region in p.regions {
                for (fips, ds) in [(false, false), (true, false), (false, true), (true, true)] {
                    let sdk = sdk_api_host(region, fips, ds).await;
                    let ours = variant_host(a, region, fips, ds);
                    seen.push(format!(
                        "{:<10} {region:<16} fips={fips:<5} dual-stack={ds:<5} sdk: {:<50} ours: {}",
                        p.id,
                        match &sdk {
                            Ok(h) => h.clone(),
                            Err(e) => format!("error: {e}"),
                        },
                        ours.as_deref().unwrap_or("-"),
                    ));
                    let Some(host) = &ours else { continue };
                    let Ok(api) = &sdk else {
                        wrong.push(format!("{host}: the SDK has no such endpoint: {sdk:?}"));
                        continue;
                    };
                    let sdk_suffix = after_region(api, region);
                    let want = if ds {
                        sdk_suffix
                            .and_then(|s| s.strip_prefix("api."))
                            .map(|x| format!("on.{x}"))
                    } else {
                        sdk_suffix.map(str::to_string)
                    };
                    if want.as_deref() != after_region(host, region) {
                        wrong.push(format!("{host}: the SDK's {api} wants suffix {want:?}"));
                    }
                    if api.contains("fips") != fips || host.contains("fips") != fips {
                        wrong.push(format!("{host} / {api}: FIPS is not {fips} in both"));
                    }
                }
            }
        }
        eprintln!("{}", seen.join("\n"));
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// The table places regions where the SDK does, including regions it does not
    /// list yet (new regions of a known shape, and the SDK's fallback to aws).
    #[tokio::test]
    async fn regions_are_placed_as_the_sdk_places_them() {
        let known = PARTITIONS.iter().flat_map(|p| p.regions.iter().copied());
        let unlisted = [
            "nz-north-1",
            "il-central-1",
            "us-gov-1",
            "us-gov-north-3",
            "us-iso-south-2",
            "us-isob-north-2",
            "eu-isoe-south-2",
            "us-isof-north-7",
            "eusc-de-west-9",
        ];
        for region in known.chain(unlisted) {
            let api = sdk_api_host(region, false, false).await.unwrap();
            let ours = registry_host("123456789012", region, Endpoint::Standard).unwrap();
            assert_eq!(
                after_region(&ours, region),
                after_region(&api, region),
                "{region}: ours {ours}, the SDK's {api}"
            );
        }
    }
}
