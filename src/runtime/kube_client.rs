//! The Kubernetes client: inferred configuration (in-cluster or KUBECONFIG),
//! `HTTPS_PROXY`/`NO_PROXY` honoured, and every request counted by verb and code.

use crate::runtime::metrics::{KubeLabels, Metrics};
use futures::future::BoxFuture;
use http::{Request, Response};
use kube::client::{Body, ClientBuilder};
use std::sync::Arc;
use std::task::{Context, Poll};

pub async fn client(metrics: Arc<Metrics>) -> Result<kube::Client, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    if config.proxy_url.is_none()
        && let Some(proxy) = proxy_for(
            config.cluster_url.host().unwrap_or_default(),
            std::env::var("HTTPS_PROXY")
                .or_else(|_| std::env::var("https_proxy"))
                .ok(),
            std::env::var("NO_PROXY")
                .or_else(|_| std::env::var("no_proxy"))
                .ok(),
        )
    {
        config.proxy_url = proxy.parse().ok();
    }
    let builder = ClientBuilder::try_from(config)?;
    Ok(builder
        .with_layer(&tower::layer::layer_fn(move |inner| CountRequests {
            inner,
            metrics: metrics.clone(),
        }))
        .build())
}

/// The proxy to use for `host`: `https_proxy` unless `no_proxy` lists the host, a
/// parent domain of it (`.example.com` or `example.com`), or `*`.
pub fn proxy_for(
    host: &str,
    https_proxy: Option<String>,
    no_proxy: Option<String>,
) -> Option<String> {
    let proxy = https_proxy.filter(|p| !p.trim().is_empty())?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let bypass = no_proxy
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .any(|entry| {
            let entry = entry.trim_start_matches('.').to_ascii_lowercase();
            !entry.is_empty()
                && (entry == "*" || host == entry || host.ends_with(&format!(".{entry}")))
        });
    (!bypass).then_some(proxy)
}

struct CountRequests<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> tower::Service<Request<Body>> for CountRequests<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let verb = verb(&req);
        let metrics = self.metrics.clone();
        let response = self.inner.call(req);
        Box::pin(async move {
            let result = response.await;
            let code = match &result {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            metrics
                .kube_requests
                .get_or_create(&KubeLabels {
                    verb: verb.into(),
                    code,
                })
                .inc();
            result
        })
    }
}

fn verb<B>(req: &Request<B>) -> &'static str {
    let query = req.uri().query().unwrap_or_default();
    match *req.method() {
        http::Method::GET
            if query
                .split('&')
                .any(|kv| kv == "watch=true" || kv == "watch=1") =>
        {
            "watch"
        }
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_bypasses_hosts_domains_and_star() {
        let p = Some("http://proxy:3128".to_string());
        assert_eq!(
            proxy_for("10.0.0.1", p.clone(), None).as_deref(),
            Some("http://proxy:3128")
        );
        assert_eq!(
            proxy_for("10.0.0.1", p.clone(), Some("localhost,10.0.0.1".into())),
            None
        );
        assert_eq!(
            proxy_for(
                "api.cluster.local",
                p.clone(),
                Some(".cluster.local".into())
            ),
            None
        );
        assert_eq!(
            proxy_for("api.cluster.local", p.clone(), Some("cluster.local".into())),
            None
        );
        assert_eq!(proxy_for("anything", p.clone(), Some("*".into())), None);
        assert!(proxy_for("notcluster.local", p, Some("cluster.local".into())).is_some());
        assert_eq!(proxy_for("x", None, None), None);
    }

    #[test]
    fn verbs_follow_the_http_method_and_watch_flag() {
        let req = |m: &str, uri: &str| Request::builder().method(m).uri(uri).body(()).unwrap();
        assert_eq!(
            verb(&req("GET", "/api/v1/namespaces?watch=true&rv=1")),
            "watch"
        );
        assert_eq!(verb(&req("GET", "/api/v1/namespaces")), "get");
        assert_eq!(
            verb(&req("PATCH", "/api/v1/namespaces/a/secrets/b")),
            "patch"
        );
    }
}
