//! IAM users and roles on moto B (IAM checks on), made with the bed's admin key,
//! and the operator pointed there.

use crate::support::bed::{Bed, TestNames, repo_root};
use crate::support::operator::Operator;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tokio::io::AsyncWriteExt;

/// moto's account: the only one whose token the bed's registry accepts.
pub const ACCOUNT: &str = "123456789012";

pub struct User {
    pub arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub fn user_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{name}")
}

pub fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

pub fn allow(action: &str, resource: &str) -> Value {
    json!({"Effect": "Allow", "Action": action, "Resource": resource})
}

/// A trust statement for `principals` that requires `external_id`.
pub fn trust(principals: &[String], external_id: &str) -> Value {
    json!({
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Principal": {"AWS": principals},
        "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
    })
}

/// Runs tests/bed/aws/iam-fixture.py with `spec`; returns the users it created.
pub async fn create(spec: Value) -> Vec<User> {
    let bed = Bed::get();
    // The bed's Python (tests/bed/aws/lib.sh); the script finds the moto venv.
    let mut child = tokio::process::Command::new("/usr/bin/python3")
        .arg(repo_root().join("tests/bed/aws/iam-fixture.py"))
        .envs(&bed.env)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run iam-fixture.py");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(spec.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.expect("iam-fixture.py");
    assert!(
        out.status.success(),
        "iam-fixture.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("iam-fixture.py prints JSON");
    assert_eq!(created["account"], ACCOUNT);
    spec["users"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let c = &created["users"][u["name"].as_str().unwrap()];
            User {
                arn: c["arn"].as_str().unwrap().to_string(),
                access_key_id: c["accessKeyId"].as_str().unwrap().to_string(),
                secret_access_key: c["secretAccessKey"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

/// The successful `operation` calls proxy B saw from sessions of `role_arn`
/// (for AssumeRole: of that role), as recorded (with "time", epoch seconds).
pub async fn records_by_role(role_arn: &str, operation: &str) -> Vec<Value> {
    records_by_role_at("BED_IAM_FAULTS", role_arn, operation, 200).await
}

/// The `operation` calls answered with `status` as seen by the fault proxy whose
/// control URL is in the bed variable `proxy` (BED_IAM_FAULTS: proxy B;
/// BED_FAULTS: proxy A, in front of moto A).
pub async fn records_by_role_at(
    proxy: &str,
    role_arn: &str,
    operation: &str,
    status: u16,
) -> Vec<Value> {
    let resp: Value = crate::support::http_client()
        .get(format!("{}/calls", Bed::get().var(proxy)))
        .query(&[
            ("roleArn", role_arn),
            ("operation", operation),
            ("status", &status.to_string()),
        ])
        .send()
        .await
        .expect("fault proxy B reachable")
        .json()
        .await
        .expect("calls JSON");
    resp["calls"].as_array().expect("calls").clone()
}

/// How many `operation` calls proxy B saw from sessions of `role_arn`.
pub async fn calls_by_role(role_arn: &str, operation: &str) -> u64 {
    records_by_role(role_arn, operation).await.len() as u64
}

/// Creates (or replaces the data of) a Secret in the test's operator namespace.
pub async fn put_credentials(
    client: &Client,
    names: &TestNames,
    name: &str,
    data: &[(&str, &str)],
) {
    let api: Api<Secret> = Api::namespaced(client.clone(), &names.ns("op"));
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }))
    .unwrap();
    if api.get_opt(name).await.expect("get secret").is_some() {
        api.replace(name, &PostParams::default(), &secret)
            .await
            .expect("replace credentials Secret");
    } else {
        api.create(&PostParams::default(), &secret)
            .await
            .expect("create credentials Secret");
    }
}

/// The operator, pointed at moto B (IAM checks on).
pub fn start_on_moto_b(names: &TestNames) -> Operator {
    start_on_moto_b_with(names, &[])
}

/// The same with more environment (flags of `run`).
pub fn start_on_moto_b_with(names: &TestNames, env: &[(&str, &str)]) -> Operator {
    let bed = Bed::get();
    let mut env = env.to_vec();
    env.push(("AWS_ENDPOINT_URL", bed.var("BED_IAM_ENDPOINT_URL")));
    Operator::start_with(bed, names, bed.kubeconfig(), &env)
}

/// The user's keys in a credentials Secret; returns its name.
pub async fn put_user_credentials(client: &Client, names: &TestNames, user: &User) -> String {
    let name = names.ns("aws");
    put_credentials(
        client,
        names,
        &name,
        &[
            ("AWS_ACCESS_KEY_ID", &user.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &user.secret_access_key),
        ],
    )
    .await;
    name
}
