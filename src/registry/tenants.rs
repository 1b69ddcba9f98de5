//! Per-namespace roles (spec.auth.namespaceRole): which role each namespace gets,
//! and the identity that assumes it. Pure; [`crate::registry::tenant_tokens`]
//! fetches.

use crate::aws::identity::Identity;
use crate::crd::ecr_registry::{
    AssumeRole, EcrRegistrySpec, NamespaceRole, ROLE_ARN_ANNOTATION, ROLE_ARN_PATTERN,
    SA_ROLE_ARN_ANNOTATION, Unannotated, WebIdentity,
};
use crate::registry::namespace_selection::ObservedNamespace;
use crate::registry::plan::ObservedServiceAccount;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Pattern of --cluster-id: what an external ID may hold, less the "/" that
/// separates it from the namespace.
pub const CLUSTER_ID_PATTERN: &str = r"^[\w+=,.@:-]{1,160}$";

/// What a selected namespace gets under spec.auth.namespaceRole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// The token of this role, assumed for the namespace.
    Role(String),
    /// The registry's own identity's token.
    Registry,
    /// No secret.
    NotServed,
    /// No usable role: the reason and what to fix.
    Invalid {
        reason: &'static str,
        message: String,
    },
}

/// How a registry's namespaces get their roles.
pub enum Mode<'a> {
    /// spec.auth.namespaceRole: the namespace's annotation, sts:AssumeRole.
    NamespaceRole(&'a NamespaceRole),
    /// spec.auth.webIdentity: the ServiceAccount's annotation,
    /// sts:AssumeRoleWithWebIdentity.
    WebIdentity(&'a WebIdentity),
}

/// The registry's mode; None when each namespace gets the registry's own token.
pub fn mode(spec: &EcrRegistrySpec) -> Option<Mode<'_>> {
    let auth = spec.auth.as_ref()?;
    match (&auth.namespace_role, &auth.web_identity) {
        (Some(n), _) => Some(Mode::NamespaceRole(n)),
        (None, Some(w)) => Some(Mode::WebIdentity(w)),
        (None, None) => None,
    }
}

/// The namespace's assignment; `service_account` is the namespace's
/// ServiceAccount of spec.auth.webIdentity, if it exists.
pub fn assign(
    mode: &Mode<'_>,
    ns: &ObservedNamespace,
    service_account: Option<&ObservedServiceAccount>,
) -> Assignment {
    static ARN: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(ROLE_ARN_PATTERN).expect("a valid pattern"));
    let (annotation, of_what, role) = match mode {
        Mode::NamespaceRole(n) => match &ns.role_arn {
            Some(arn) => (ROLE_ARN_ANNOTATION, "namespace".to_string(), arn),
            None => {
                return match n.unannotated {
                    Unannotated::RegistryIdentity => Assignment::Registry,
                    Unannotated::NoSecret => Assignment::NotServed,
                };
            }
        },
        Mode::WebIdentity(w) => {
            let name = &w.service_account;
            let Some(sa) = service_account else {
                return Assignment::Invalid {
                    reason: "ServiceAccountMissing",
                    message: format!(
                        "no ServiceAccount {name} here (spec.auth.webIdentity.serviceAccount); create it with the annotation {SA_ROLE_ARN_ANNOTATION}"
                    ),
                };
            };
            let Some(arn) = &sa.role_arn else {
                return Assignment::Invalid {
                    reason: "RoleAnnotationMissing",
                    message: format!(
                        "ServiceAccount {name} has no annotation {SA_ROLE_ARN_ANNOTATION}; annotate it with the IAM role its pull token comes from"
                    ),
                };
            };
            (
                SA_ROLE_ARN_ANNOTATION,
                format!("ServiceAccount {name}'s"),
                arn,
            )
        }
    };
    let arn = role.trim();
    if ARN.is_match(arn) {
        return Assignment::Role(arn.to_string());
    }
    Assignment::Invalid {
        reason: "InvalidRoleAnnotation",
        message: format!(
            "the {of_what} annotation {annotation} is {arn:?}, not an IAM role ARN such as arn:aws:iam::123456789012:role/team-a-pull; fix or remove the annotation"
        ),
    }
}

/// The namespaces of each role, in order.
pub fn by_role<'a>(
    assignments: impl IntoIterator<Item = (&'a str, &'a Assignment)>,
) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut roles: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (ns, a) in assignments {
        if let Assignment::Role(arn) = a {
            roles.entry(arn.as_str()).or_default().push(ns);
        }
    }
    roles
}

/// The external ID a namespace's role is assumed with: a role's trust policy
/// names the namespaces that may use it, and a namespace cannot pass another's.
pub fn external_id(cluster_id: &str, namespace: &str) -> String {
    format!("{cluster_id}/{namespace}")
}

/// The identity that assumes `role_arn` for `namespace`: the registry's
/// credentials (own identity or static keys), through its intermediate role when
/// spec.auth.assumeRole.via is set, never through spec.auth.assumeRole itself
/// (that is the registry's identity, not the tenant's). The session is named after
/// the namespace, for CloudTrail.
pub fn identity(
    registry: &Identity,
    role_arn: &str,
    cluster_id: &str,
    namespace: &str,
) -> Identity {
    Identity {
        assume_role: Some(AssumeRole {
            role_arn: role_arn.to_string(),
            external_id: Some(external_id(cluster_id, namespace)),
            session_name: Some(session_name(namespace)),
            duration_seconds: None,
            via: registry.assume_role.as_ref().and_then(|r| r.via.clone()),
        }),
        ..registry.clone()
    }
}

/// A role session name (2–64 of [\w+=,.@-]) from a namespace name (a DNS label).
pub fn session_name(namespace: &str) -> String {
    let mut name = format!("ecr-{namespace}");
    name.truncate(64);
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ecr_registry::{AssumeRole, Auth, NamespaceRole, ViaRole};

    fn spec(unannotated: Unannotated) -> EcrRegistrySpec {
        EcrRegistrySpec {
            region: Some("eu-west-1".into()),
            auth: Some(Auth {
                namespace_role: Some(NamespaceRole { unannotated }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ns(name: &str, role: Option<&str>) -> ObservedNamespace {
        ObservedNamespace {
            name: name.into(),
            role_arn: role.map(String::from),
            ..Default::default()
        }
    }

    const ROLE_A: &str = "arn:aws:iam::111111111111:role/team-a";

    fn assign_ns(spec: &EcrRegistrySpec, ns: &ObservedNamespace) -> Option<Assignment> {
        Some(assign(&mode(spec)?, ns, None))
    }

    #[test]
    fn each_namespace_gets_its_annotated_role_and_unannotated_ones_the_admin_s_choice() {
        let strict = spec(Unannotated::NoSecret);
        assert_eq!(
            assign_ns(&strict, &ns("a", Some(ROLE_A))),
            Some(Assignment::Role(ROLE_A.into()))
        );
        assert_eq!(
            assign_ns(&strict, &ns("c", None)),
            Some(Assignment::NotServed)
        );
        let lenient = spec(Unannotated::RegistryIdentity);
        assert_eq!(
            assign_ns(&lenient, &ns("c", None)),
            Some(Assignment::Registry)
        );
        // Without namespaceRole the annotation means nothing.
        assert_eq!(
            assign_ns(&EcrRegistrySpec::default(), &ns("a", Some(ROLE_A))),
            None
        );
    }

    #[test]
    fn an_annotation_that_is_no_role_arn_is_refused_by_name() {
        for bad in [
            "team-a",
            "arn:aws:iam::111111111111:user/a",
            "arn:aws:iam::1:role/a",
        ] {
            let Some(Assignment::Invalid { reason, message }) =
                assign_ns(&spec(Unannotated::RegistryIdentity), &ns("a", Some(bad)))
            else {
                panic!("{bad} was accepted");
            };
            assert_eq!(reason, "InvalidRoleAnnotation");
            assert!(
                message.contains(ROLE_ARN_ANNOTATION) && message.contains(bad),
                "{message}"
            );
        }
    }

    #[test]
    fn under_web_identity_the_service_account_s_annotation_names_the_role() {
        let web = WebIdentity {
            service_account: "puller".into(),
        };
        let mode = Mode::WebIdentity(&web);
        // The namespace's own annotation does not count.
        let n = ns("a", Some(ROLE_A));
        let sa = |role: Option<&str>| ObservedServiceAccount {
            namespace: "a".into(),
            name: "puller".into(),
            role_arn: role.map(String::from),
            ..Default::default()
        };
        let missing = assign(&mode, &n, None);
        assert!(
            matches!(&missing, Assignment::Invalid { reason: "ServiceAccountMissing", message } if message.contains("puller")),
            "{missing:?}"
        );
        let bare = assign(&mode, &n, Some(&sa(None)));
        assert!(
            matches!(&bare, Assignment::Invalid { reason: "RoleAnnotationMissing", message } if message.contains(SA_ROLE_ARN_ANNOTATION)),
            "{bare:?}"
        );
        let role_b = "arn:aws:iam::222222222222:role/team-b";
        assert_eq!(
            assign(&mode, &n, Some(&sa(Some(role_b)))),
            Assignment::Role(role_b.into())
        );
        let bad = assign(&mode, &n, Some(&sa(Some("b"))));
        assert!(matches!(
            bad,
            Assignment::Invalid {
                reason: "InvalidRoleAnnotation",
                ..
            }
        ));
    }

    #[test]
    fn namespaces_are_grouped_by_role() {
        let a = Assignment::Role(ROLE_A.into());
        let b = Assignment::Role("arn:aws:iam::222222222222:role/team-b".into());
        let groups = by_role([
            ("n1", &a),
            ("n2", &b),
            ("n3", &a),
            ("n4", &Assignment::Registry),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[ROLE_A], vec!["n1", "n3"]);
    }

    #[test]
    fn the_tenant_identity_binds_the_namespace_and_keeps_only_the_intermediate_role() {
        let registry = Identity {
            region: "eu-west-1".into(),
            public: false,
            fips: false,
            static_keys: None,
            assume_role: Some(AssumeRole {
                role_arn: "arn:aws:iam::999999999999:role/registry".into(),
                via: Some(ViaRole {
                    role_arn: "arn:aws:iam::888888888888:role/hub".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let t = identity(&registry, ROLE_A, "prod-eu", "team-a");
        let role = t.assume_role.unwrap();
        assert_eq!(role.role_arn, ROLE_A);
        assert_eq!(role.external_id.as_deref(), Some("prod-eu/team-a"));
        assert_eq!(
            role.via.unwrap().role_arn,
            "arn:aws:iam::888888888888:role/hub"
        );
        assert_eq!(role.session_name.as_deref(), Some("ecr-team-a"));
        assert!(
            regex::Regex::new(CLUSTER_ID_PATTERN)
                .unwrap()
                .is_match("prod-eu")
        );
        assert!(
            !regex::Regex::new(CLUSTER_ID_PATTERN)
                .unwrap()
                .is_match("a/b")
        );
    }
}
