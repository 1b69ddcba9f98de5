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

    /// The proxy's records of the calls of `operation` with this access key ID
    /// (seq, time, status, action, ...).
    pub async fn records(&self, access_key_id: &str, operation: &str) -> Vec<Value> {
        let resp: Value = self
            .http
            .get(format!("{}/calls", self.base))
            .query(&[("accessKeyId", access_key_id), ("operation", operation)])
            .send()
            .await
            .expect("fault proxy reachable")
            .json()
            .await
            .unwrap();
        resp["calls"].as_array().cloned().unwrap_or_default()
    }

    /// The secret keys and session tokens that assumed roles handed out to
    /// chains of calls started by this access key ID (through this proxy).
    pub async fn issued(&self, access_key_id: &str) -> Vec<String> {
        let resp: Value = self
            .http
            .get(format!("{}/issued", self.base))
            .query(&[("accessKeyId", access_key_id)])
            .send()
            .await
            .expect("fault proxy reachable")
            .json()
            .await
            .unwrap();
        resp["secrets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    }
}
