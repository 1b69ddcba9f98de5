//! Registry host names per region, partition and endpoint variant.

use crate::crd::ecr_registry::Endpoint;

/// The AWS partition a region belongs to, which fixes the DNS suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    Aws,
    AwsCn,
    AwsUsGov,
    AwsIso,
    AwsIsoB,
}

impl Partition {
    pub fn of_region(region: &str) -> Self {
        if region.starts_with("cn-") {
            Self::AwsCn
        } else if region.starts_with("us-gov-") {
            Self::AwsUsGov
        } else if region.starts_with("us-isob-") {
            Self::AwsIsoB
        } else if region.starts_with("us-iso-") {
            Self::AwsIso
        } else {
            Self::Aws
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Aws | Self::AwsUsGov => "amazonaws.com",
            Self::AwsCn => "amazonaws.com.cn",
            Self::AwsIso => "c2s.ic.gov",
            Self::AwsIsoB => "sc2s.sgov.gov",
        }
    }

    fn dual_stack_suffix(self) -> &'static str {
        match self {
            Self::AwsCn => "on.amazonwebservices.com.cn",
            _ => "on.aws",
        }
    }
}

/// The registry host of `account` in `region` for one endpoint variant.
pub fn registry_host(account: &str, region: &str, endpoint: Endpoint) -> String {
    let (fips, dual_stack) = match endpoint {
        Endpoint::Standard => (false, false),
        Endpoint::Fips => (true, false),
        Endpoint::DualStack => (false, true),
    };
    variant_host(account, region, fips, dual_stack)
}

/// The one table of host shapes: `dkr.ecr`, `dkr.ecr-fips` under the partition's
/// suffix; `dkr-ecr`, `dkr-ecr-fips` under its dual-stack suffix.
fn variant_host(account: &str, region: &str, fips: bool, dual_stack: bool) -> String {
    let partition = Partition::of_region(region);
    let (service, suffix) = match (fips, dual_stack) {
        (false, false) => ("dkr.ecr", partition.suffix()),
        (true, false) => ("dkr.ecr-fips", partition.suffix()),
        (false, true) => ("dkr-ecr", partition.dual_stack_suffix()),
        (true, true) => ("dkr-ecr-fips", partition.dual_stack_suffix()),
    };
    format!("{account}.{service}.{region}.{suffix}")
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
/// another shape, or whose suffix is not its region's partition's, is None.
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
    (region_ok && variant_host(account, region, fips, dual_stack) == host).then(|| EcrHost {
        account: account.to_string(),
        region: region.to_string(),
        fips,
        dual_stack,
    })
}

/// Every host to write: each account with each endpoint variant, sorted and unique.
pub fn registry_hosts(accounts: &[String], region: &str, endpoints: &[Endpoint]) -> Vec<String> {
    let mut hosts: Vec<String> = accounts
        .iter()
        .flat_map(|a| endpoints.iter().map(move |e| registry_host(a, region, *e)))
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
        assert_eq!(
            registry_host(a, "eu-west-1", Endpoint::Standard),
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            registry_host(a, "cn-north-1", Endpoint::Standard),
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            registry_host(a, "us-gov-west-1", Endpoint::Fips),
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"
        );
        assert_eq!(
            registry_host(a, "us-east-1", Endpoint::DualStack),
            "123456789012.dkr-ecr.us-east-1.on.aws"
        );
        assert_eq!(
            registry_host(a, "cn-northwest-1", Endpoint::DualStack),
            "123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn"
        );
        assert_eq!(
            registry_host(a, "us-iso-east-1", Endpoint::Standard),
            "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov"
        );
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
        for region in ["eu-west-1", "cn-north-1", "us-gov-east-1", "us-isob-east-1"] {
            for e in [Endpoint::Standard, Endpoint::Fips, Endpoint::DualStack] {
                let h = registry_host(&a, region, e);
                let p = parse_registry_host(&h).unwrap_or_else(|| panic!("{h}"));
                assert_eq!(
                    (p.account.as_str(), p.region.as_str()),
                    (a.as_str(), region)
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
}
