//! Client of the bed's fault-injecting AWS proxy.

use serde_json::{Value, json};

pub struct Faults {
    base: String,
    http: reqwest::Client,
}

impl Faults {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: crate::support::http_client(),
        }
    }

    /// Adds a rule for `access_key_id`; returns its id.
    pub async fn add(&self, access_key_id: &str, operation: &str, action: Value) -> String {
        let mut rule = action;
        rule["match"] = json!({"accessKeyId": access_key_id, "operation": operation});
        let resp: Value = self
            .http
            .post(format!("{}/rules", self.base))
            .json(&rule)
            .send()
            .await
            .expect("fault proxy reachable")
            .error_for_status()
            .expect("rule accepted")
            .json()
            .await
            .unwrap();
        resp["id"].as_str().expect("rule id").to_string()
    }

    /// Adds a rule as the proxy takes it (`match` and action, see
    /// faultproxy.py), e.g. one matching a `region` or a `service`; returns its id.
    pub async fn add_rule(&self, rule: Value) -> String {
        let resp = self
            .http
            .post(format!("{}/rules", self.base))
            .json(&rule)
            .send()
            .await
            .expect("fault proxy reachable");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        assert!(status.is_success(), "rule {rule} refused: {body}");
        body["id"].as_str().expect("rule id").to_string()
    }

    pub async fn remove(&self, id: &str) {
        self.http
            .delete(format!("{}/rules/{id}", self.base))
            .send()
            .await
            .expect("fault proxy reachable");
    }

    /// How many calls of `operation` the proxy saw with this access key ID.
    pub async fn calls(&self, access_key_id: &str, operation: &str) -> u64 {
        self.records(access_key_id, operation).await.len() as u64
    }

    /// Tokens of `access_key_id` that expire `seconds` after they are fetched
    /// (the proxy's `expires_in`); returns the rule's id.
    pub async fn short_tokens(&self, access_key_id: &str, seconds: u64) -> String {
        self.add(
            access_key_id,
            "GetAuthorizationToken",
            json!({"action": "expires_in", "seconds": seconds}),
        )
        .await
    }

    /// The proxy's records of the calls of `operation` with this access key ID
    /// (seq, time, status, action, ...).
    pub async fn records(&self, access_key_id: &str, operation: &str) -> Vec<Value> {
        let resp = self
            .get(
                "calls",
                &[("accessKeyId", access_key_id), ("operation", operation)],
            )
            .await;
        resp["calls"].as_array().cloned().unwrap_or_default()
    }

    /// The proxy's records of the calls with this access key ID whose record
    /// fields equal `filters` (e.g. `[("service", "ecr-public")]`; none: every call).
    pub async fn records_where(&self, access_key_id: &str, filters: &[(&str, &str)]) -> Vec<Value> {
        let mut query = vec![("accessKeyId", access_key_id)];
        query.extend_from_slice(filters);
        let resp = self.get("calls", &query).await;
        resp["calls"].as_array().cloned().unwrap_or_default()
    }

    /// The secret keys and session tokens that assumed roles handed out to
    /// chains of calls started by this access key ID (through this proxy).
    pub async fn issued(&self, access_key_id: &str) -> Vec<String> {
        let resp = self.get("issued", &[("accessKeyId", access_key_id)]).await;
        resp["secrets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    }

    async fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Value {
        self.http
            .get(format!("{}/{endpoint}", self.base))
            .query(query)
            .send()
            .await
            .expect("fault proxy reachable")
            .json()
            .await
            .unwrap()
    }
}
