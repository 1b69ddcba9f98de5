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
    let partition = Partition::of_region(region);
    match endpoint {
        Endpoint::Standard => format!("{account}.dkr.ecr.{region}.{}", partition.suffix()),
        Endpoint::Fips => format!("{account}.dkr.ecr-fips.{region}.{}", partition.suffix()),
        Endpoint::DualStack => {
            format!(
                "{account}.dkr-ecr.{region}.{}",
                partition.dual_stack_suffix()
            )
        }
    }
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
    fn account_is_read_from_the_proxy_endpoint() {
        assert_eq!(
            account_of_proxy_endpoint("https://123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            Some("123456789012".into())
        );
        assert_eq!(account_of_proxy_endpoint("https://localhost:5000"), None);
    }
}
