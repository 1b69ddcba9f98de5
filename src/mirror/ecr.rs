//! The EcrMirror controller's ECR calls, made as the EcrRegistry's identity:
//! CreateRepository and SetRepositoryPolicy before a push.

use crate::aws::failure::ecr_error;
use crate::aws::identity::Identity;
use crate::crd::ecr_mirror::{EcrMirror, TagMutability};
use crate::crd::ecr_registry::EcrRegistry;
use crate::error::Result;
use crate::mirror::job::Resolved;
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::types::{ImageScanningConfiguration, ImageTagMutability};
use kube::Client;

pub struct Ecr {
    client: Client,
    /// Where the EcrRegistries' credential Secrets live.
    operator_namespace: String,
    aws: aws_config::SdkConfig,
}

impl Ecr {
    pub fn new(client: Client, operator_namespace: String, aws: aws_config::SdkConfig) -> Self {
        Self {
            client,
            operator_namespace,
            aws,
        }
    }

    /// An ECR client with the EcrRegistry's credentials, in `region`.
    async fn ecr_client(
        &self,
        registry: &EcrRegistry,
        region: &str,
    ) -> Result<aws_sdk_ecr::Client> {
        let identity = Identity::for_registry(&self.client, &self.operator_namespace, registry)
            .await?
            .in_region(region);
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
        let ecr = self.ecr_client(registry, &resolved.region).await?;
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
}
