//! The EcrMirror controller's ECR calls, made as the EcrRegistry's identity:
//! CreateRepository and SetRepositoryPolicy before a push, DescribeImages for the
//! digest of a finished copy.

use crate::aws::failure::ecr_error;
use crate::aws::identity::Identity;
use crate::crd::ecr_mirror::{EcrMirror, TagMutability};
use crate::crd::ecr_registry::EcrRegistry;
use crate::error::Result;
use crate::mirror::job::Resolved;
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::types::{ImageIdentifier, ImageScanningConfiguration, ImageTagMutability};
use k8s_openapi::api::batch::v1::Job;
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use std::sync::Mutex;

/// Digests remembered at most; the cache starts over beyond.
const MAX_CACHED_DIGESTS: usize = 10_000;

pub struct Ecr {
    client: Client,
    /// Where the EcrRegistries' credential Secrets live.
    operator_namespace: String,
    aws: aws_config::SdkConfig,
    /// Digests looked up per Job uid (None: the image was not found), so each
    /// successful Job costs one DescribeImages.
    digests: Mutex<HashMap<String, Option<String>>>,
}

/// Where the digest of a copied image is found.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// The image was named by digest.
    Known(String),
    /// DescribeImages of this tag.
    Tag { repository: String, tag: String },
    /// Nowhere (a pull source without tag or digest).
    Nothing,
}

/// Push: the pushed repository and its first tag. Pull: the ECR source, by digest
/// or by tag.
fn lookup(mirror: &EcrMirror) -> Lookup {
    match (&mirror.spec.push, &mirror.spec.pull) {
        (Some(push), _) => Lookup::Tag {
            repository: push.repository.clone(),
            tag: push.tags.first().cloned().unwrap_or_default(),
        },
        (None, Some(pull)) => match pull.source.split_once('@') {
            Some((_, digest)) => Lookup::Known(digest.to_string()),
            None => match pull.source.rsplit_once(':') {
                Some((repository, tag)) => Lookup::Tag {
                    repository: repository.to_string(),
                    tag: tag.to_string(),
                },
                None => Lookup::Nothing,
            },
        },
        (None, None) => Lookup::Nothing,
    }
}

impl Ecr {
    pub fn new(client: Client, operator_namespace: String, aws: aws_config::SdkConfig) -> Self {
        Self {
            client,
            operator_namespace,
            aws,
            digests: Mutex::default(),
        }
    }

    /// An ECR client with the EcrRegistry's credentials.
    async fn ecr_client(&self, registry: &EcrRegistry) -> Result<aws_sdk_ecr::Client> {
        let identity =
            Identity::for_registry(&self.client, &self.operator_namespace, registry).await?;
        Ok(aws_sdk_ecr::Client::new(
            &identity.sdk_config(&self.aws).await?,
        ))
    }

    /// CreateRepository (an existing repository is fine), then SetRepositoryPolicy
    /// when a policy is given.
    pub async fn ensure_repository(
        &self,
        mirror: &EcrMirror,
        registry: &EcrRegistry,
        resolved: &Resolved,
    ) -> Result<()> {
        let Some(push) = &mirror.spec.push else {
            return Ok(());
        };
        let ecr = self.ecr_client(registry).await?;
        let settings = &push.create_repository;
        let mutability = match settings.image_tag_mutability {
            TagMutability::Mutable => ImageTagMutability::Mutable,
            TagMutability::Immutable => ImageTagMutability::Immutable,
        };
        match ecr
            .create_repository()
            .registry_id(&resolved.account)
            .repository_name(&push.repository)
            .image_tag_mutability(mutability)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(settings.scan_on_push)
                    .build(),
            )
            .send()
            .await
        {
            Ok(_) => tracing::info!(repository = push.repository, "ECR repository created"),
            Err(e) if e.code() == Some("RepositoryAlreadyExistsException") => {}
            Err(e) => return Err(ecr_error("CreateRepository", &e)),
        }
        if let Some(policy) = &settings.repository_policy {
            ecr.set_repository_policy()
                .registry_id(&resolved.account)
                .repository_name(&push.repository)
                .policy_text(policy)
                .send()
                .await
                .map_err(|e| ecr_error("SetRepositoryPolicy", &e))?;
        }
        Ok(())
    }

    /// The digest of the image in ECR after `job` copied it; None when the image
    /// is not there (e.g. deleted since, or a tag moved).
    pub async fn digest(
        &self,
        mirror: &EcrMirror,
        registry: Option<&EcrRegistry>,
        resolved: &Resolved,
        job: &Job,
    ) -> Result<Option<String>> {
        let uid = job.uid().unwrap_or_default();
        if let Some(d) = self.digests.lock().expect("lock").get(&uid) {
            return Ok(d.clone());
        }
        let (repository, tag) = match lookup(mirror) {
            Lookup::Known(digest) => return Ok(Some(digest)),
            Lookup::Tag { repository, tag } => (repository, tag),
            Lookup::Nothing => return Ok(None),
        };
        let Some(registry) = registry else {
            return Ok(None);
        };
        let ecr = self.ecr_client(registry).await?;
        let digest = match ecr
            .describe_images()
            .registry_id(&resolved.account)
            .repository_name(&repository)
            .image_ids(ImageIdentifier::builder().image_tag(&tag).build())
            .send()
            .await
        {
            Ok(out) => out
                .image_details()
                .first()
                .and_then(|d| d.image_digest())
                .map(str::to_string),
            Err(e)
                if matches!(
                    e.code(),
                    Some("ImageNotFoundException" | "RepositoryNotFoundException")
                ) =>
            {
                None
            }
            Err(e) => return Err(ecr_error("DescribeImages", &e)),
        };
        let mut cache = self.digests.lock().expect("lock");
        if cache.len() > MAX_CACHED_DIGESTS {
            cache.clear();
        }
        cache.insert(uid, digest.clone());
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::mirror;
    use serde_json::json;

    fn pull(source: &str) -> EcrMirror {
        let mut m = mirror(json!({}));
        m.spec.push = None;
        m.spec.pull = serde_json::from_value(json!({
            "source": source, "destination": "registry.example.com/app:v1",
        }))
        .unwrap();
        m
    }

    #[test]
    fn the_digest_is_looked_up_by_the_ecr_side_of_the_copy() {
        assert_eq!(
            lookup(&mirror(json!({}))),
            Lookup::Tag {
                repository: "mirror/nginx".into(),
                tag: "1.27".into(),
            }
        );
        assert_eq!(
            lookup(&pull("team/app:v1")),
            Lookup::Tag {
                repository: "team/app".into(),
                tag: "v1".into(),
            }
        );
        assert_eq!(
            lookup(&pull("team/app@sha256:abc")),
            Lookup::Known("sha256:abc".into())
        );
        assert_eq!(lookup(&pull("team/app")), Lookup::Nothing);
    }
}
