//! The CRD's schema on a real API server: bad specs are refused with a message
//! that names the field, a full valid spec round-trips with defaults applied, and
//! every field is documented (what `kubectl explain` shows).

use crate::support::bed::{Bed, TestNames, eventually};
use crate::support::fixtures;
use ecr_operator::crd::ecr_registry::{EcrRegistry, EcrRegistrySpec};
use kube::api::{ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::{Api, Client, CustomResourceExt};
use serde_json::{Value, json};

fn dynamic_api(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ApiResource::erase::<EcrRegistry>(&()))
}

/// Creates an EcrRegistry from raw JSON, so specs that the Rust types cannot even
/// represent (an unknown enum value) reach the API server.
async fn create_raw(
    client: &Client,
    name: &str,
    spec: Value,
) -> Result<DynamicObject, kube::Error> {
    let ar = ApiResource::erase::<EcrRegistry>(&());
    let obj = DynamicObject::new(name, &ar).data(json!({ "spec": spec }));
    dynamic_api(client)
        .create(&PostParams::default(), &obj)
        .await
}

#[tokio::test]
async fn invalid_specs_are_refused_with_the_field_named() {
    let names = TestNames::new("crdbad");
    let client = fixtures::setup(&names).await;
    let role = |extra: Value| {
        let mut r = json!({"roleArn": "arn:aws:iam::123456789012:role/ecr-pull"});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"region": "us-east-1", "auth": {"assumeRole": r}})
    };
    let long_name = format!("{}-{}", names.id, "x".repeat(64));
    assert!(long_name.len() > 63);
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "bad region",
            names.ns("1"),
            json!({"region": "Europe"}),
            "spec.region",
        ),
        (
            "short registry id",
            names.ns("2"),
            json!({"region": "us-east-1", "registryIds": ["123"]}),
            "spec.registryIds",
        ),
        (
            "user ARN as role",
            names.ns("3"),
            role(json!({"roleArn": "arn:aws:iam::123:user/x"})),
            "spec.auth.assumeRole.roleArn",
        ),
        (
            "session too short",
            names.ns("4"),
            role(json!({"durationSeconds": 100})),
            "spec.auth.assumeRole.durationSeconds",
        ),
        (
            "refreshBefore below 10s",
            names.ns("5"),
            json!({"region": "us-east-1", "refreshBefore": "1s"}),
            "spec.refreshBefore",
        ),
        (
            "refreshBefore above 11h",
            names.ns("6"),
            json!({"region": "us-east-1", "refreshBefore": "12h"}),
            "spec.refreshBefore",
        ),
        (
            "Fips in China",
            names.ns("7"),
            json!({"region": "cn-north-1", "endpoints": ["Fips"]}),
            "spec.endpoints",
        ),
        (
            "unknown endpoint",
            names.ns("8"),
            json!({"region": "us-east-1", "endpoints": ["Foo"]}),
            "spec.endpoints",
        ),
        (
            "unknown selector operator",
            names.ns("9"),
            json!({"region": "us-east-1", "namespaces": {"selector": {"matchExpressions": [{"key": "team", "operator": "Equals", "values": ["a"]}]}}}),
            "spec.namespaces.selector.matchExpressions[].operator",
        ),
        (
            "In without values",
            names.ns("10"),
            json!({"region": "us-east-1", "namespaces": {"selector": {"matchExpressions": [{"key": "team", "operator": "In"}]}}}),
            "spec.namespaces.selector.matchExpressions[].values",
        ),
        (
            "Exists with values",
            names.ns("11"),
            json!({"region": "us-east-1", "namespaces": {"selector": {"matchExpressions": [{"key": "team", "operator": "Exists", "values": ["a"]}]}}}),
            "spec.namespaces.selector.matchExpressions[].values",
        ),
        (
            "DualStack in the European Sovereign Cloud",
            names.ns("12"),
            json!({"region": "eusc-de-east-1", "endpoints": ["Standard", "DualStack"]}),
            "spec.endpoints",
        ),
        (
            "role ARN of no partition",
            names.ns("13"),
            role(json!({"roleArn": "arn:aws-iso-z:iam::123456789012:role/x"})),
            "spec.auth.assumeRole.roleArn",
        ),
        (
            "region and regions together",
            names.ns("14"),
            json!({"region": "us-east-1", "regions": ["eu-west-1"]}),
            "spec.regions: give either spec.region or spec.regions, not both",
        ),
        (
            "neither region nor regions",
            names.ns("15"),
            json!({"endpoints": ["Standard"]}),
            "spec.regions: name at least one region",
        ),
        (
            "neither region nor regions, public false",
            names.ns("16"),
            json!({"public": false}),
            "spec.regions: name at least one region",
        ),
        (
            "public with a China region",
            names.ns("17"),
            json!({"region": "cn-north-1", "public": true}),
            "spec.public: ECR Public exists only in the aws partition",
        ),
        (
            "public with a GovCloud region in regions",
            names.ns("18"),
            json!({"regions": ["us-east-1", "us-gov-west-1"], "public": true}),
            "spec.public: ECR Public exists only in the aws partition",
        ),
        (
            "Fips with a China region in regions",
            names.ns("19"),
            json!({"regions": ["eu-west-1", "cn-north-1"], "endpoints": ["Fips"]}),
            "spec.endpoints: Fips endpoints do not exist in the China regions",
        ),
        (
            "DualStack with an ISO region in regions",
            names.ns("20"),
            json!({"regions": ["us-east-1", "us-iso-east-1"], "endpoints": ["Standard", "DualStack"]}),
            "spec.endpoints: DualStack endpoints do not exist",
        ),
        (
            "bad region in regions",
            names.ns("21"),
            json!({"regions": ["eu-west-1", "Europe"]}),
            "spec.regions[1]",
        ),
        (
            "empty regions",
            names.ns("22"),
            json!({"regions": []}),
            "spec.regions",
        ),
        (
            "a region twice in regions",
            names.ns("23"),
            json!({"regions": ["eu-west-1", "eu-west-1"]}),
            "spec.regions[1]: Duplicate value",
        ),
        (
            "eleven regions",
            names.ns("24"),
            json!({"regions": (1..=11).map(|i| format!("eu-west-{i}")).collect::<Vec<_>>()}),
            "spec.regions: Too many",
        ),
        (
            "webIdentity with secretRef",
            names.ns("25"),
            json!({"region": "us-east-1", "auth": {"webIdentity": {"serviceAccount": "puller"}, "secretRef": {"name": "aws"}}}),
            "spec.auth.webIdentity: the ServiceAccounts' own roles are used",
        ),
        (
            "webIdentity with namespaceRole",
            names.ns("26"),
            json!({"region": "us-east-1", "auth": {"webIdentity": {"serviceAccount": "puller"}, "namespaceRole": {}}}),
            "spec.auth.webIdentity: the ServiceAccounts' own roles are used",
        ),
        (
            "unannotated of another value",
            names.ns("27"),
            json!({"region": "us-east-1", "auth": {"namespaceRole": {"unannotated": "Everything"}}}),
            "spec.auth.namespaceRole.unannotated",
        ),
        (
            "webIdentity with a bad ServiceAccount name",
            names.ns("28"),
            json!({"region": "us-east-1", "auth": {"webIdentity": {"serviceAccount": "Puller!"}}}),
            "spec.auth.webIdentity.serviceAccount",
        ),
        (
            "name of 64+ characters",
            long_name,
            json!({"region": "us-east-1"}),
            "metadata.name",
        ),
    ];
    let mut wrong = Vec::new();
    for (case, name, spec, field) in cases {
        match create_raw(&client, &name, spec.clone()).await {
            Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(field) => {}
            Err(kube::Error::Api(s)) => wrong.push(format!(
                "{case}: want 422 naming {field}, got {} {:?}",
                s.code, s.message
            )),
            Err(e) => wrong.push(format!("{case}: want 422 naming {field}, got {e}")),
            Ok(_) => {
                let _ = dynamic_api(&client)
                    .delete(&name, &DeleteParams::default())
                    .await;
                wrong.push(format!("{case}: accepted {spec}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the API server did not refuse as expected:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn a_full_spec_round_trips_and_defaults_are_applied() {
    let names = TestNames::new("crdok");
    let client = fixtures::setup(&names).await;
    let full = json!({
        "region": "eu-west-1",
        "registryIds": ["123456789012", "210987654321"],
        "endpoints": ["Standard", "Fips", "DualStack"],
        "auth": {
            "secretRef": {"name": "ecr-credentials"},
            "assumeRole": {
                "roleArn": "arn:aws:iam::123456789012:role/path/ecr-pull",
                "externalId": "ext-1",
                "sessionName": "ecr-operator-test",
                "durationSeconds": 7200,
                "via": {
                    "roleArn": "arn:aws:iam::210987654321:role/hub",
                    "externalId": "hub-ext",
                    "sessionName": "hub-session",
                },
            },
        },
        "secret": {
            "name": "ecr-pull",
            "labels": {"team": "a"},
            "annotations": {"example.com/note": "managed"},
        },
        "namespaces": {
            "names": ["app", "web"],
            "selector": {
                "matchLabels": {"ecr": "yes"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}],
            },
            "exclude": ["kube-system"],
        },
        "serviceAccounts": ["default", "builder"],
        "refreshBefore": "1h30m",
    });
    let api = dynamic_api(&client);

    let full_name = names.ns("full");
    create_raw(&client, &full_name, full.clone())
        .await
        .expect("the full example is accepted");
    let stored = api.get(&full_name).await.expect("get");
    assert_eq!(
        stored.data["spec"], full,
        "the full spec comes back unchanged (nothing pruned)"
    );
    let typed: EcrRegistry = Api::all(client.clone())
        .get(&full_name)
        .await
        .expect("typed get");
    let want: EcrRegistrySpec = serde_json::from_value(full).unwrap();
    assert_eq!(typed.spec, want);

    let min_name = names.ns("min");
    create_raw(&client, &min_name, json!({"region": "us-east-1"}))
        .await
        .expect("a region alone is accepted");
    let stored = api.get(&min_name).await.expect("get");
    assert_eq!(stored.data["spec"]["endpoints"], json!(["Standard"]));
    assert_eq!(stored.data["spec"]["refreshBefore"], json!("6h"));

    // The newest partitions: their regions and role ARNs, with Fips.
    let isof_name = names.ns("isof");
    create_raw(
        &client,
        &isof_name,
        json!({
            "region": "us-isof-south-1",
            "endpoints": ["Standard", "Fips"],
            "auth": {"assumeRole": {"roleArn": "arn:aws-iso-f:iam::123456789012:role/ecr-pull"}},
        }),
    )
    .await
    .expect("an aws-iso-f region and role ARN are accepted");
    let eusc_name = names.ns("eusc");
    create_raw(
        &client,
        &eusc_name,
        json!({
            "region": "eusc-de-east-1",
            "auth": {"assumeRole": {"roleArn": "arn:aws-eusc:iam::123456789012:role/ecr-pull"}},
        }),
    )
    .await
    .expect("an aws-eusc region and role ARN are accepted");

    for name in [full_name, min_name, isof_name, eusc_name] {
        api.delete(&name, &DeleteParams::default())
            .await
            .expect("delete");
    }
}

/// What the new fields accept: several regions (also of two partitions: the
/// operator reports that, see registry_regions.rs), ECR Public with a region of
/// the aws partition or alone, and the Fips/DualStack rules only where they apply.
#[tokio::test]
async fn regions_and_public_are_accepted_where_valid() {
    let names = TestNames::new("crdreg");
    let client = fixtures::setup(&names).await;
    let api = dynamic_api(&client);
    let cases = [
        (
            "several",
            json!({"regions": ["eu-west-1", "us-east-1"], "endpoints": ["Standard", "Fips", "DualStack"]}),
        ),
        (
            "public with a region",
            json!({"region": "us-east-1", "public": true}),
        ),
        (
            "public with regions",
            json!({"regions": ["eu-west-1", "us-west-2"], "public": true}),
        ),
        ("public alone", json!({"public": true})),
        (
            "two partitions",
            json!({"regions": ["eu-west-1", "cn-north-1"]}),
        ),
        (
            "DualStack in China",
            json!({"regions": ["cn-north-1", "cn-northwest-1"], "endpoints": ["DualStack"]}),
        ),
        (
            "Fips in GovCloud and ISO",
            json!({"regions": ["us-gov-west-1", "us-iso-east-1"], "endpoints": ["Fips"]}),
        ),
        (
            "region, public false",
            json!({"region": "eu-west-1", "public": false}),
        ),
    ];
    let mut wrong = Vec::new();
    for (i, (case, spec)) in cases.iter().enumerate() {
        let name = names.ns(&format!("ok{i}"));
        match create_raw(&client, &name, spec.clone()).await {
            Ok(_) => {
                let stored = api.get(&name).await.expect("get");
                for key in ["region", "regions", "public"] {
                    if stored.data["spec"][key] != spec[key] {
                        wrong.push(format!(
                            "{case}: spec.{key} stored as {}",
                            stored.data["spec"][key]
                        ));
                    }
                }
                api.delete(&name, &DeleteParams::default())
                    .await
                    .expect("delete");
            }
            Err(e) => wrong.push(format!("{case}: refused {spec}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `kubectl explain` output once the CRD's schema is published (which lags a
/// little behind the CRD being established).
async fn explain(bed: &Bed, field: &str, want: &str) -> String {
    eventually(
        60,
        &format!("kubectl explain {field} to show {want:?}"),
        || async {
            let out = bed
                .kubectl()
                .args(["explain", field])
                .output()
                .expect("run kubectl");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            (out.status.success() && text.contains(want)).then_some(text)
        },
    )
    .await
}

#[tokio::test]
async fn kubectl_explain_shows_the_doc_comments() {
    let bed = Bed::get();
    let names = TestNames::new("crdexplain");
    fixtures::setup(&names).await;
    explain(
        bed,
        "ecrregistry.spec.auth.assumeRole.externalId",
        "External ID that the role's trust policy requires (sts:ExternalId).",
    )
    .await;
    let text = explain(
        bed,
        "ecrregistry.status.namespaces",
        "How many namespaces are selected and how many hold the current secret.",
    )
    .await;
    for field in ["selected", "synced", "summary"] {
        assert!(
            text.contains(field),
            "status.namespaces lists no {field}:\n{text}"
        );
    }
    let text = explain(
        bed,
        "ecrregistry.spec.regions",
        "AWS regions of the registries",
    )
    .await;
    for words in [
        "all in one partition",
        "Exclusive with spec.region",
        "[]string",
    ] {
        assert!(text.contains(words), "spec.regions: no {words:?}:\n{text}");
    }
    let text = explain(bed, "ecrregistry.spec.public", "Also write ECR Public").await;
    for words in ["sts:GetServiceBearerToken", "<boolean>"] {
        assert!(text.contains(words), "spec.public: no {words:?}:\n{text}");
    }
    let text = explain(
        bed,
        "ecrregistry.status.regions",
        "The token of each region",
    )
    .await;
    for field in ["name", "expiresAt", "lastRefreshTime", "reason"] {
        assert!(
            text.contains(field),
            "status.regions lists no {field}:\n{text}"
        );
    }
    explain(
        bed,
        "ecrregistry.status.regionSummary",
        "for the printer column",
    )
    .await;
    let text = explain(
        bed,
        "ecrregistry.spec.auth.namespaceRole",
        "Give each namespace the token of its own IAM role",
    )
    .await;
    for words in [
        "ecr-operator.io/role-arn",
        "<cluster-id>/<namespace>",
        "unannotated",
    ] {
        assert!(
            text.contains(words),
            "spec.auth.namespaceRole: no {words:?}:\n{text}"
        );
    }
    let text = explain(
        bed,
        "ecrregistry.spec.auth.namespaceRole.unannotated",
        "without the ecr-operator.io/role-arn annotation",
    )
    .await;
    for words in ["NoSecret", "RegistryIdentity"] {
        assert!(text.contains(words), "unannotated: no {words:?}:\n{text}");
    }
    let text = explain(
        bed,
        "ecrregistry.spec.auth.webIdentity",
        "Give each namespace the token of the IAM role of its own ServiceAccount",
    )
    .await;
    for words in [
        "eks.amazonaws.com/role-arn",
        "sts.amazonaws.com",
        "serviceAccount",
    ] {
        assert!(
            text.contains(words),
            "spec.auth.webIdentity: no {words:?}:\n{text}"
        );
    }
}

/// Paths of the properties under `schema` (recursively) without a description.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let p = format!("{path}.{name}");
            let described = prop
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !described {
                out.push(p.clone());
            }
            undocumented(prop, &p, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(items, &format!("{path}[]"), out);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        undocumented(extra, &format!("{path}{{}}"), out);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for (i, s) in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            undocumented(s, &format!("{path}<{key}{i}>"), out);
        }
    }
}

#[test]
fn every_field_is_documented() {
    let crd = serde_json::to_value(EcrRegistry::crd()).unwrap();
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    assert!(!versions.is_empty());
    for v in versions {
        let schema = &v["schema"]["openAPIV3Schema"];
        assert!(
            schema["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "the kind has no description"
        );
        let mut missing = Vec::new();
        undocumented(schema, "", &mut missing);
        assert!(
            missing.is_empty(),
            "fields without a description: {missing:?}"
        );
        // The walk saw the deep fields too.
        let n = serde_json::to_string(schema)
            .unwrap()
            .matches("\"description\"")
            .count();
        assert!(n > 40, "only {n} descriptions in the schema");
    }
}
