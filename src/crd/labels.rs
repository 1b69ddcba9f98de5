//! Label and annotation syntax, as the API server checks it: the CRDs cannot
//! (CEL over maps of any size is refused as too costly), and an invalid key in a
//! selector would otherwise select nothing without a word.

use std::collections::BTreeMap;

/// `prefix/name` or `name`: a DNS subdomain prefix of at most 253 characters, a
/// name of at most 63 alphanumerics with `-`, `_` or `.` inside.
pub fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return Err(format!(
            "{key:?}: the prefix before '/' must be a DNS subdomain (lower case letters, digits, '-' and '.'), at most 253 characters"
        ));
    }
    if !is_name(name) {
        return Err(format!(
            "{key:?}: the name must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Empty, or a name as in [`check_key`].
pub fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_name(value) {
        return Ok(());
    }
    Err(format!(
        "{value:?}: a label value must be empty or 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    ))
}

/// Checks every key of `map` (and, for labels, every value); the error names
/// `field` and the entry.
pub fn check_map(
    field: &str,
    map: &BTreeMap<String, String>,
    values_are_labels: bool,
) -> Result<(), String> {
    for (k, v) in map {
        check_key(k).map_err(|e| format!("{field}: key {e}"))?;
        if values_are_labels {
            check_value(v).map_err(|e| format!("{field}[{k:?}]: value {e}"))?;
        }
    }
    Ok(())
}

fn is_name(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    (1..=63).contains(&s.len())
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.split('.').all(|label| {
            let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
            !label.is_empty()
                && label.starts_with(ok)
                && label.ends_with(ok)
                && label.chars().all(|c| ok(c) || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_follow_the_api_servers_rules() {
        for good in ["team", "app.kubernetes.io/name", "a_b.c-d", "example.com/x"] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in [
            "bad key!",
            "",
            "-x",
            "Example.com/x",
            "a/b/c",
            &"x".repeat(64),
            "/x",
        ] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        assert!(check_value("").is_ok());
        assert!(check_value("v1.2_x").is_ok());
        assert!(check_value("not a label value!").is_err());
        let map = BTreeMap::from([("team".to_string(), "a b".to_string())]);
        let e = check_map("spec.secret.labels", &map, true).unwrap_err();
        assert!(e.starts_with("spec.secret.labels[\"team\"]: value"), "{e}");
        assert!(check_map("spec.secret.annotations", &map, false).is_ok());
    }
}
