//! Which namespaces an EcrRegistry selects.

use crate::crd::ecr_registry::NamespaceSelection;
use crate::crd::labels::{check_key, check_map, check_value};
use kube::core::{Selector, SelectorExt};
use std::collections::BTreeMap;

/// What the operator knows of a namespace (from a metadata-only watch).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedNamespace {
    pub name: String,
    /// A namespace deleted and re-created under the same name is a new namespace.
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Its ecr-operator.io/role-arn annotation (spec.auth.namespaceRole).
    pub role_arn: Option<String>,
    /// Deletion has started: writes would fail, so it is skipped quietly.
    pub terminating: bool,
}

/// A `NamespaceSelection` with its label selector parsed once.
pub struct NamespaceMatcher<'a> {
    selection: &'a NamespaceSelection,
    selector: Option<Selector>,
}

impl<'a> NamespaceMatcher<'a> {
    /// Fails with a message naming the field when the label selector is invalid.
    pub fn new(selection: &'a NamespaceSelection) -> Result<Self, String> {
        if let Some(s) = &selection.selector {
            let field = "spec.namespaces.selector";
            if let Some(m) = &s.match_labels {
                check_map(&format!("{field}.matchLabels"), m, true)?;
            }
            for (i, e) in s.match_expressions.iter().flatten().enumerate() {
                let at = format!("{field}.matchExpressions[{i}]");
                check_key(&e.key).map_err(|m| format!("{at}.key: {m}"))?;
                for v in e.values.iter().flatten() {
                    check_value(v).map_err(|m| format!("{at}.values: {m}"))?;
                }
            }
        }
        let selector = selection
            .selector
            .clone()
            .map(Selector::try_from)
            .transpose()
            .map_err(|e| format!("spec.namespaces.selector: {e}"))?;
        Ok(Self {
            selection,
            selector,
        })
    }

    /// Named or matching the selector (everything when neither is given), and not excluded.
    pub fn matches(&self, ns: &ObservedNamespace) -> bool {
        if self.selection.exclude.contains(&ns.name) {
            return false;
        }
        let by_name = self.selection.names.contains(&ns.name);
        let by_labels = self
            .selector
            .as_ref()
            .is_some_and(|s| s.matches(&ns.labels));
        let select_all = self.selection.names.is_empty() && self.selector.is_none();
        select_all || by_name || by_labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn ns(name: &str, labels: &[(&str, &str)]) -> ObservedNamespace {
        ObservedNamespace {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn empty_selection_selects_all_but_excluded() {
        let sel = NamespaceSelection {
            exclude: vec!["kube-system".into()],
            ..Default::default()
        };
        let m = NamespaceMatcher::new(&sel).unwrap();
        assert!(m.matches(&ns("team-a", &[])));
        assert!(!m.matches(&ns("kube-system", &[])));
    }

    #[test]
    fn names_and_selector_are_a_union_and_exclude_wins() {
        let sel = NamespaceSelection {
            names: vec!["team-a".into()],
            selector: Some(LabelSelector {
                match_labels: Some([("ecr".to_string(), "on".to_string())].into()),
                ..Default::default()
            }),
            exclude: vec!["team-x".into()],
        };
        let m = NamespaceMatcher::new(&sel).unwrap();
        assert!(m.matches(&ns("team-a", &[])));
        assert!(m.matches(&ns("team-b", &[("ecr", "on")])));
        assert!(!m.matches(&ns("team-c", &[("ecr", "off")])));
        assert!(!m.matches(&ns("team-x", &[("ecr", "on")])));
    }

    #[test]
    fn invalid_selector_names_the_field() {
        let sel = NamespaceSelection {
            selector: Some(LabelSelector {
                match_expressions: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                        key: "a".into(),
                        operator: "Bogus".into(),
                        values: None,
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = NamespaceMatcher::new(&sel).err().unwrap();
        assert!(err.starts_with("spec.namespaces.selector"), "{err}");
        // A key no label can have selects nothing: said, not silently accepted.
        let sel = NamespaceSelection {
            selector: Some(LabelSelector {
                match_labels: Some([("bad key!".to_string(), "v".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = NamespaceMatcher::new(&sel).err().unwrap();
        assert!(
            err.starts_with("spec.namespaces.selector.matchLabels: key \"bad key!\""),
            "{err}"
        );
    }
}
