//! The `EcrRegistry` custom resource: one cluster-scoped object that keeps a
//! `kubernetes.io/dockerconfigjson` pull secret fresh in every selected namespace.
//!
//! Every field carries a doc comment (it becomes the `kubectl explain` text) and
//! every constraint a schema can express is in the schema, so the API server
//! refuses bad input with a message that names the field.

use super::{DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Pattern for AWS regions in every partition of `aws::registry_hosts::PARTITIONS`:
/// us-east-1, cn-north-1, us-gov-west-1, us-iso-east-1, us-isob-east-1,
/// eu-isoe-west-1, us-isof-south-1, eusc-de-east-1. A region of another qualified
/// shape (us-isoz-…) is refused rather than taken for an aws one; the unit tests
/// check it against that table.
pub const REGION_PATTERN: &str =
    r"^([a-z]{2}|us-gov|us-iso|us-isob|us-isof|eu-isoe|eusc-de)-[a-z]+-[0-9]+$";
/// Pattern for an IAM role ARN in every partition of `aws::registry_hosts::PARTITIONS`,
/// paths allowed.
pub const ROLE_ARN_PATTERN: &str = r"^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc):iam::[0-9]{12}:role/[a-zA-Z0-9+=,.@_/-]{1,512}$";

/// Keeps ECR pull secrets fresh in the selected namespaces.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ecr-operator.io",
    version = "v1alpha1",
    kind = "EcrRegistry",
    plural = "ecrregistries",
    shortname = "ecrreg",
    status = "EcrRegistryStatus",
    doc = "EcrRegistry keeps a kubernetes.io/dockerconfigjson secret with fresh Amazon ECR credentials in every selected namespace.",
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name: must be at most 63 characters, because it is used as a label value on the managed secrets"),
    printcolumn = r#"{"name":"Regions","type":"string","jsonPath":".status.regionSummary"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.namespaces.summary"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.region) && has(self.regions))").message("spec.regions: give either spec.region or spec.regions, not both; move spec.region into spec.regions"))]
#[x_kube(validation = Rule::new("has(self.region) || has(self.regions) || (has(self.public) && self.public)").message("spec.regions: name at least one region (spec.region or spec.regions), or set spec.public to true"))]
#[x_kube(validation = Rule::new("!self.endpoints.exists(e, e == 'Fips') || !(has(self.regions) ? self.regions : has(self.region) ? [self.region] : []).exists(r, r.startsWith('cn-'))").message("spec.endpoints: Fips endpoints do not exist in the China regions; use Standard or DualStack"))]
#[x_kube(validation = Rule::new("!self.endpoints.exists(e, e == 'DualStack') || !(has(self.regions) ? self.regions : has(self.region) ? [self.region] : []).exists(r, r.startsWith('us-iso-') || r.startsWith('us-isob-') || r.startsWith('us-isof-') || r.startsWith('eu-isoe-') || r.startsWith('eusc-'))").message("spec.endpoints: DualStack endpoints do not exist in the aws-iso, aws-iso-b, aws-iso-e, aws-iso-f and aws-eusc partitions; use Standard or Fips"))]
#[x_kube(validation = Rule::new("!(has(self.public) && self.public) || !(has(self.regions) ? self.regions : has(self.region) ? [self.region] : []).exists(r, r.startsWith('cn-') || r.startsWith('us-gov-') || r.startsWith('us-iso-') || r.startsWith('us-isob-') || r.startsWith('us-isof-') || r.startsWith('eu-isoe-') || r.startsWith('eusc-'))").message("spec.public: ECR Public exists only in the aws partition (its token comes from us-east-1, which credentials of another partition cannot call); use a separate EcrRegistry for public.ecr.aws"))]
#[x_kube(validation = Rule::new("!has(self.auth) || !has(self.auth.webIdentity) || !(has(self.auth.secretRef) || has(self.auth.assumeRole) || has(self.auth.namespaceRole))").message("spec.auth.webIdentity: the ServiceAccounts' own roles are used, so secretRef, assumeRole and namespaceRole do not apply; remove them or webIdentity"))]
pub struct EcrRegistrySpec {
    /// AWS region of the registries, e.g. eu-west-1, cn-north-1, us-gov-west-1 or
    /// eusc-de-east-1, in any partition (aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b,
    /// aws-iso-e, aws-iso-f, aws-eusc). For several regions use spec.regions
    /// instead (the two are exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(REGION_PATTERN))]
    pub region: Option<String>,

    /// AWS regions of the registries, all in one partition, e.g. [eu-west-1,
    /// us-east-1]: one secret holds the hosts of every region. One authorization
    /// token is fetched per identity and region, concurrently; a region whose
    /// refresh fails keeps its last entry while that is valid, is named in the
    /// Ready condition and in status.regions, and does not hold the others back.
    /// Exclusive with spec.region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 10), inner(pattern(REGION_PATTERN)), extend("x-kubernetes-list-type" = "set"))]
    pub regions: Vec<String>,

    /// Also write ECR Public (public.ecr.aws) into the secret, with a token from
    /// ecr-public:GetAuthorizationToken in us-east-1 (the identity also needs
    /// sts:GetServiceBearerToken), fetched with the same identity (spec.auth).
    /// Authenticated pulls from ECR Public get higher rate limits than anonymous
    /// ones. Only in the aws partition. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,

    /// 12-digit AWS account IDs whose registries go into the secret. The same token
    /// authenticates to every registry of the region that the identity may read.
    /// Default: the account of the credentials in use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(pattern(r"^[0-9]{12}$")), extend("x-kubernetes-list-type" = "set"))]
    pub registry_ids: Vec<String>,

    /// Which host names to write for each registry: Standard
    /// (<account>.dkr.ecr.<region>.amazonaws.com), Fips (<account>.dkr.ecr-fips.<region>.amazonaws.com)
    /// and DualStack (<account>.dkr-ecr.<region>.on.aws). The DNS suffix follows from the
    /// region's partition. Fips does not exist in the China regions; DualStack only in
    /// the aws, aws-cn and aws-us-gov partitions. With Fips in the list, the AWS calls
    /// for this registry (STS and ECR) use FIPS endpoints too. Default: [Standard].
    #[serde(default = "default_endpoints")]
    #[schemars(length(min = 1), extend("x-kubernetes-list-type" = "set"))]
    pub endpoints: Vec<Endpoint>,

    /// Where the AWS credentials come from. Absent: the operator's own identity
    /// (environment, IRSA web identity, EKS Pod Identity or instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,

    /// The managed secret written into each selected namespace.
    #[serde(default)]
    pub secret: SecretTemplate,

    /// Which namespaces get the secret. Without names and selector: all namespaces.
    #[serde(default)]
    pub namespaces: NamespaceSelection,

    /// ServiceAccounts (by name, in every selected namespace) that get the secret in
    /// their imagePullSecrets, so pods need not name it. Other entries are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN)), extend("x-kubernetes-list-type" = "set"))]
    pub service_accounts: Vec<String>,

    /// Refresh the token when less than this is left before it expires (tokens live 12h).
    /// A duration such as 6h, 90m or 1h30m, from 10s to 11h. Default: 6h.
    #[serde(default = "default_refresh_before")]
    #[schemars(pattern(r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"))]
    #[x_kube(validation = Rule::new("self != '' && duration(self) >= duration('10s') && duration(self) <= duration('11h')").message("spec.refreshBefore: must be a duration from 10s to 11h, e.g. 6h or 90m"))]
    pub refresh_before: String,

    /// Which EcrMirrors may copy images through this registry (its identity and
    /// its secret), set by the cluster admin. Absent: none may; an EcrMirror that
    /// names this registry fails with MirrorNotAllowed and makes no AWS call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrors: Option<MirrorAllowance>,
}

/// What the EcrMirrors of some namespaces may do through an EcrRegistry. An
/// EcrMirror outside it is refused before any Job or AWS call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorAllowance {
    /// Namespaces whose EcrMirrors may use this registry, by name, or "*" for
    /// every namespace the registry writes its secret into.
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 63), pattern(r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$")), extend("x-kubernetes-list-type" = "set"))]
    pub namespaces: Vec<String>,

    /// ECR repositories those EcrMirrors may push to (creating them) or pull
    /// from: an exact name (team-a/app), a prefix ending in "/*" (team-a/*: every
    /// repository under team-a/), or "*" for all. "{namespace}" stands for the
    /// EcrMirror's namespace: "{namespace}/*" gives each namespace its own prefix.
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 256), pattern(r"^(\*|([a-z0-9._-]+|\{namespace\})(/([a-z0-9._-]+|\{namespace\}))*(/\*)?)$")), extend("x-kubernetes-list-type" = "set"))]
    pub repositories: Vec<String>,

    /// Let EcrMirrors set jobTemplate.image and jobTemplate.serviceAccountName:
    /// run another image, under another ServiceAccount of their namespace, with
    /// this registry's secret mounted. Default false: the operator's image under
    /// the namespace's default ServiceAccount (with no token mounted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_job_overrides: bool,

    /// Let push EcrMirrors set createRepository.repositoryPolicy, which replaces
    /// the policy of a repository they may push to (SetRepositoryPolicy). Default
    /// false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_repository_policy: bool,
}

/// A host-name variant of an ECR registry endpoint.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum Endpoint {
    /// <account>.dkr.ecr.<region>.<partition suffix>
    Standard,
    /// <account>.dkr.ecr-fips.<region>.<partition suffix> (every partition but aws-cn)
    Fips,
    /// <account>.dkr-ecr.<region>.on.aws, in China .on.amazonwebservices.com.cn (IPv4
    /// and IPv6; aws, aws-cn and aws-us-gov partitions)
    DualStack,
}

fn default_endpoints() -> Vec<Endpoint> {
    vec![Endpoint::Standard]
}

pub const DEFAULT_REFRESH_BEFORE: &str = "6h";

fn default_refresh_before() -> String {
    DEFAULT_REFRESH_BEFORE.to_string()
}

/// Credentials used to fetch the ECR token. Both fields may be combined: the static
/// keys (or the operator's own identity) then assume the role.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// Static keys: a Secret in the operator's own namespace with the keys
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and optionally AWS_SESSION_TOKEN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,

    /// An IAM role to assume (optionally through an intermediate role) before
    /// fetching the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRole>,

    /// Give each namespace the token of its own IAM role: the role named by the
    /// namespace annotation ecr-operator.io/role-arn, assumed from the identity
    /// above (the operator's own or spec.auth.secretRef, through
    /// spec.auth.assumeRole.via when set) with the external ID
    /// "<cluster-id>/<namespace>" (--cluster-id), so that the role's trust policy
    /// says which namespaces may use it. A namespace whose role cannot be assumed
    /// is reported in status.failures and by an Event in that
    /// namespace, and its secret is removed; it never falls back to another
    /// identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_role: Option<NamespaceRole>,

    /// Give each namespace the token of the IAM role of its own ServiceAccount:
    /// for the ServiceAccount named here in each selected namespace, the operator
    /// requests a short-lived token for the audience sts.amazonaws.com
    /// (TokenRequest) and exchanges it with sts:AssumeRoleWithWebIdentity for the
    /// role in that ServiceAccount's eks.amazonaws.com/role-arn annotation; the
    /// role's trust policy (the cluster's OIDC provider, sub
    /// system:serviceaccount:<namespace>:<name>) says which ServiceAccounts may
    /// use it. A namespace without that ServiceAccount or annotation, or whose
    /// exchange is refused, is reported as with namespaceRole and gets no secret.
    /// Exclusive with secretRef, assumeRole and namespaceRole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_identity: Option<WebIdentity>,
}

/// The ServiceAccount annotation that names its IAM role (spec.auth.webIdentity),
/// as EKS's IRSA reads it.
pub const SA_ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// ServiceAccount web identity (see spec.auth.webIdentity).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebIdentity {
    /// Name of the ServiceAccount, in every selected namespace, whose role
    /// (annotation eks.amazonaws.com/role-arn) that namespace's token is fetched
    /// with, e.g. ecr-puller.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub service_account: String,
}

/// The namespace annotation that names a namespace's IAM role
/// (spec.auth.namespaceRole).
pub const ROLE_ARN_ANNOTATION: &str = "ecr-operator.io/role-arn";

/// Per-namespace roles (see spec.auth.namespaceRole).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRole {
    /// What a selected namespace without the ecr-operator.io/role-arn annotation
    /// gets: NoSecret (none; an existing managed secret is removed) or
    /// RegistryIdentity (the token of the registry's own identity, spec.auth
    /// without namespaceRole). Default: NoSecret.
    #[serde(default)]
    pub unannotated: Unannotated,
}

/// What an unannotated namespace gets under spec.auth.namespaceRole.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum Unannotated {
    /// No secret.
    #[default]
    NoSecret,
    /// The registry's own identity's token.
    RegistryIdentity,
}

/// A reference to a Secret in the operator's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub struct SecretRef {
    /// Name of the Secret in the operator's namespace.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// An IAM role assumed with sts:AssumeRole.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRole {
    /// ARN of the role, e.g. arn:aws:iam::123456789012:role/ecr-pull.
    #[schemars(pattern(ROLE_ARN_PATTERN))]
    pub role_arn: String,

    /// External ID that the role's trust policy requires (sts:ExternalId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224), pattern(r"^[\w+=,.@:/-]+$"))]
    pub external_id: Option<String>,

    /// Role session name, visible in CloudTrail. Default: ecr-operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 64), pattern(r"^[\w+=,.@-]+$"))]
    pub session_name: Option<String>,

    /// Lifetime of the role session in seconds, 900 to 43200. Default: 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 900, max = 43200))]
    pub duration_seconds: Option<i32>,

    /// Role chaining: assume this intermediate role first, then the role above with
    /// the intermediate role's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<ViaRole>,
}

/// The intermediate role of a role chain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViaRole {
    /// ARN of the intermediate role, e.g. arn:aws:iam::210987654321:role/hub.
    #[schemars(pattern(ROLE_ARN_PATTERN))]
    pub role_arn: String,

    /// External ID that the intermediate role's trust policy requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224), pattern(r"^[\w+=,.@:/-]+$"))]
    pub external_id: Option<String>,

    /// Role session name for the intermediate role. Default: ecr-operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 64), pattern(r"^[\w+=,.@-]+$"))]
    pub session_name: Option<String>,
}

/// Name and metadata of the managed secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
pub struct SecretTemplate {
    /// Name of the secret in each namespace. Default: the EcrRegistry's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: Option<String>,

    /// Labels copied onto every managed secret (the operator's own labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Annotations copied onto every managed secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Which namespaces get the secret: those named or matching the selector (or all
/// namespaces when neither is given), minus the excluded ones.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
pub struct NamespaceSelection {
    /// Namespaces selected by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 63), pattern(DNS_LABEL_PATTERN)), extend("x-kubernetes-list-type" = "set"))]
    pub names: Vec<String>,

    /// Namespaces selected by their labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])").message("spec.namespaces.selector.matchExpressions[].operator: must be In, NotIn, Exists or DoesNotExist"))]
    #[x_kube(validation = Rule::new("!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))").message("spec.namespaces.selector.matchExpressions[].values: In and NotIn need at least one value, Exists and DoesNotExist take none"))]
    pub selector: Option<LabelSelector>,

    /// Namespaces never selected, whatever names and selector say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 63), pattern(DNS_LABEL_PATTERN)), extend("x-kubernetes-list-type" = "set"))]
    pub exclude: Vec<String>,
}

/// Observed state, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcrRegistryStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready is True when every selected namespace holds a valid secret; its reason
    /// says what to fix otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Registry hosts written into the secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<String>,

    /// The token of each region (and of ECR Public, named "public"): when it
    /// expires, when it was fetched, and why its last refresh failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub regions: Vec<RegionStatus>,

    /// The regions for the printer column, a failing one with its reason: e.g.
    /// "eu-west-1,us-east-1(Throttled),public".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_summary: Option<String>,

    /// When the token in the secrets expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,

    /// When the token was last fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_time: Option<Time>,

    /// When the next refresh is planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_refresh_time: Option<Time>,

    /// How many namespaces are selected and how many hold the current secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NamespaceCounts>,

    /// Deprecated: release 0.1 listed here the namespaces that hold the managed
    /// secret. They are now recorded in ConfigMaps ecr-registry.<name>.<n> in the
    /// operator's namespace (a list of every namespace made the status grow with
    /// the cluster); read once on upgrade, then left empty. Written again only
    /// while that record cannot be written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_namespaces: Vec<String>,

    /// Name of the managed secret where it was written (to move it when
    /// spec.secret.name changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// Namespaces that could not be synced (at most 20), with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<NamespaceFailure>,
}

/// The token of one region, or of ECR Public.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionStatus {
    /// The region, or "public" for ECR Public (public.ecr.aws, token from us-east-1).
    pub name: String,

    /// When the token written for this region expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,

    /// When that token was fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_time: Option<Time>,

    /// Why the last refresh of this region failed (e.g. AccessDenied, Throttled);
    /// absent when it succeeded. The Ready condition's message says more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Counts of selected and synced namespaces.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct NamespaceCounts {
    /// Namespaces the spec selects (terminating ones excluded).
    pub selected: u32,
    /// Selected namespaces that hold the current secret.
    pub synced: u32,
    /// "synced/selected", for the printer column.
    pub summary: String,
}

/// A namespace that could not be synced.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default, JsonSchema,
)]
pub struct NamespaceFailure {
    /// The namespace.
    pub namespace: String,
    /// Why, as a CamelCase reason (e.g. SecretConflict).
    pub reason: String,
    /// What happened and how to fix it.
    pub message: String,
}

/// The name of ECR Public in spec and status ("public").
pub const PUBLIC: &str = "public";

impl EcrRegistrySpec {
    /// The regions, from spec.regions or spec.region.
    pub fn regions(&self) -> Vec<&str> {
        match &self.region {
            Some(r) if self.regions.is_empty() => vec![r.as_str()],
            _ => self.regions.iter().map(String::as_str).collect(),
        }
    }
}

impl EcrRegistry {
    /// Name of the managed secret in each namespace.
    pub fn secret_name(&self) -> String {
        self.spec
            .secret
            .name
            .clone()
            .unwrap_or_else(|| kube::ResourceExt::name_any(self))
    }
}

#[cfg(test)]
mod tests {
    use super::{Endpoint, REGION_PATTERN, ROLE_ARN_PATTERN};
    use crate::aws::registry_hosts::{PARTITIONS, Partition};
    use regex::Regex;

    #[test]
    fn region_pattern_accepts_every_partition() {
        let re = Regex::new(REGION_PATTERN).unwrap();
        for p in PARTITIONS {
            for r in p.regions {
                assert!(re.is_match(r), "{r} ({})", p.id);
            }
        }
        for ok in [
            "us-east-1",
            "eu-central-2",
            "il-central-1",
            "nz-north-1",
            "us-isof-east-1",
        ] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in [
            "",
            "useast1",
            "US-EAST-1",
            "us-east",
            "us-east-1a",
            "usa-east-1",
            "eusc-east-1",
            "eusc-fr-east-1",
            "us-isoz-east-1",
            "eu-iso-west-1",
            "aws-global",
            "eu-isoe-west-1 ",
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
        // A region of more than three parts is accepted exactly when a partition's
        // regionRegex claims it: none falls through to aws by mistake.
        let regexes: Vec<Regex> = PARTITIONS
            .iter()
            .map(|p| Regex::new(p.region_regex).unwrap())
            .collect();
        for head in ["us", "eu", "cn", "ap", "eusc"] {
            for q in ["gov", "iso", "isob", "isoe", "isof", "isoz", "de", "fr"] {
                let r = format!("{head}-{q}-west-1");
                assert_eq!(
                    re.is_match(&r),
                    regexes.iter().any(|x| x.is_match(&r)),
                    "{r}"
                );
                if re.is_match(&r) {
                    assert_ne!(Partition::of_region(&r).id, "aws", "{r}");
                }
            }
        }
    }

    #[test]
    fn role_arn_pattern_names_every_partition() {
        let re = Regex::new(ROLE_ARN_PATTERN).unwrap();
        let named = ROLE_ARN_PATTERN
            .strip_prefix("^arn:(")
            .and_then(|s| s.split_once("):"))
            .map(|(alts, _)| {
                let mut v: Vec<&str> = alts.split('|').collect();
                v.sort();
                v
            })
            .unwrap();
        let mut ids: Vec<&str> = PARTITIONS.iter().map(|p| p.id).collect();
        ids.sort();
        assert_eq!(named, ids, "the ARN pattern names the table's partitions");
        for p in PARTITIONS {
            let arn = format!("arn:{}:iam::123456789012:role/path/ecr-pull", p.id);
            assert!(re.is_match(&arn), "{arn}");
        }
        for bad in [
            "arn:aws-iso-z:iam::123456789012:role/x",
            "arn:azure:iam::123456789012:role/x",
            "arn::iam::123456789012:role/x",
            "arn:aws-eusc:iam::123456789012:user/x",
            "arn:aws-iso-f:sts::123456789012:role/x",
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    /// The CRD's CEL rules refuse an endpoint variant in a region exactly when the
    /// partition table has no such host there. The rules are read from the
    /// generated schema: each names one variant (`e == 'Fips'`) and the region
    /// prefixes (`startsWith('cn-')`) where it is refused.
    #[test]
    fn endpoint_rules_follow_the_partition_table() {
        fn rules(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::String(r)) = m.get("rule") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| rules(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| rules(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        rules(
            &serde_json::to_value(<super::EcrRegistry as kube::CustomResourceExt>::crd()).unwrap(),
            &mut all,
        );
        let variant = Regex::new(r"e == '(\w+)'").unwrap();
        let prefix = Regex::new(r"startsWith\('([^']+)'\)").unwrap();
        let refused: Vec<(String, Vec<String>)> = all
            .iter()
            .filter(|r| r.contains("self.endpoints.exists"))
            .map(|r| {
                let v = variant.captures(r).unwrap()[1].to_string();
                let ps = prefix.captures_iter(r).map(|c| c[1].to_string()).collect();
                (v, ps)
            })
            .collect();
        assert_eq!(refused.len(), 2, "one rule for Fips, one for DualStack");
        for p in PARTITIONS {
            for region in p.regions {
                for (e, name) in [(Endpoint::Fips, "Fips"), (Endpoint::DualStack, "DualStack")] {
                    let by_rule = refused.iter().any(|(v, ps)| {
                        v == name && ps.iter().any(|x| region.starts_with(x.as_str()))
                    });
                    assert_eq!(by_rule, !p.offers(e), "{region} {name}");
                }
            }
        }
    }

    #[test]
    fn committed_crd_matches_the_code() {
        let committed = include_str!("../../crds/ecrregistry.yaml");
        assert!(
            committed == crate::crd::crd_yaml::<super::EcrRegistry>(),
            "crds/ecrregistry.yaml is stale: run `make crds` and commit the result"
        );
    }
}
