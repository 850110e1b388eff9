//! The container runtime, through the Docker Engine API (bollard). The only module that
//! knows about bollard.
//!
//! - Built-in services run in an image `stack` builds from its own executable: the binary,
//!   the shared libraries it links and a minimal `/etc`, imported as a tar (no registry, no
//!   base image), tagged `stack-builtin:<version>-<12 hex of its sha256>` and rebuilt only
//!   when the binary changes.
//! - User services use `image:` (pulled when missing) or `build:` (a Dockerfile context
//!   sent to the engine, its output in the service's log).
//! - Every project gets a bridge network `stack_<project>` where each service's name is a
//!   DNS alias; containers are labelled `dev.stack.project` / `dev.stack.service` /
//!   `dev.stack.run` (the supervisor run, for the reaper) / `dev.stack.config-hash` (a
//!   changed service is recreated) and publish their ports on
//!   127.0.0.1 only; they reach host processes as `host.docker.internal`.
//! - `down` finds everything by label, so it needs no state and survives a killed supervisor.

use std::collections::HashMap;
use std::time::Duration;

/// Labels on everything `stack` creates.
pub(crate) const PROJECT_LABEL: &str = "dev.stack.project";
/// The service a container runs.
pub(crate) const SERVICE_LABEL: &str = "dev.stack.service";
/// The supervisor run that created a container (see [`crate::runtime::reaper`]).
pub(crate) const RUN_LABEL: &str = "dev.stack.run";
/// A hash of the container's configuration: a different one means "recreate".
pub(crate) const HASH_LABEL: &str = "dev.stack.config-hash";
/// The repository of the built-in image.
pub(crate) const BUILTIN_REPO: &str = "stack-builtin";

/// A failure of the engine or of what was asked of it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DockerError {
    /// No engine answers.
    #[error("the Docker engine is not reachable: {0}")]
    Unreachable(String),
    /// An image cannot be had.
    #[error("image `{image}` is not available: {reason}")]
    ImageMissing {
        /// The image.
        image: String,
        /// Why.
        reason: String,
    },
    /// Building an image failed.
    #[error("building `{image}` failed: {reason}")]
    Build {
        /// The tag.
        image: String,
        /// The builder's error.
        reason: String,
    },
    /// Any other engine error.
    #[error("{0}")]
    Api(String),
}

impl DockerError {
    /// The hint shown under the error.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        match self {
            DockerError::Unreachable(_) => Some(
                "start the engine (`sudo systemctl start docker`, or `dockerd &`), or point DOCKER_HOST at one",
            ),
            DockerError::ImageMissing { .. } => Some(
                "check the name and tag; offline, build it locally (`build:`) or `docker load` it first",
            ),
            _ => None,
        }
    }
}

fn api(e: bollard::errors::Error) -> DockerError {
    DockerError::Api(e.to_string())
}

/// `result`, also `Ok` when the engine answered one of `harmless` (gone, already
/// stopped, not running…).
fn tolerating(
    result: Result<(), bollard::errors::Error>,
    harmless: &[u16],
) -> Result<(), DockerError> {
    match result {
        Err(bollard::errors::Error::DockerResponseServerError { status_code, .. })
            if harmless.contains(&status_code) =>
        {
            Ok(())
        }
        other => other.map_err(api),
    }
}

/// A connection to the engine.
#[derive(Debug, Clone)]
pub(crate) struct Docker {
    api: bollard::Docker,
    /// Services starting together build the built-in image once.
    builtin: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// …and create the project network once (the engine allows duplicate names).
    network: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Removals of stopped containers still under way (see [`Docker::settle`]).
    teardown: tokio_util::task::TaskTracker,
    /// …by container id: a container being removed is never started again.
    removals: std::sync::Arc<std::sync::Mutex<HashMap<String, tokio::sync::watch::Receiver<bool>>>>,
    /// Containers stopped to be started again as they are, by name (see
    /// [`Docker::resume_kept`]).
    kept: std::sync::Arc<std::sync::Mutex<HashMap<String, String>>>,
}

/// A container of a project, as `down` and `doctor` see it.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// Its id.
    pub id: String,
    /// Whether it runs.
    pub running: bool,
}

impl Docker {
    /// Connects to the engine (`DOCKER_HOST`, else the local socket) and checks it answers.
    pub(crate) async fn connect() -> Result<Docker, DockerError> {
        let api = bollard::Docker::connect_with_local_defaults()
            .map_err(|e| DockerError::Unreachable(e.to_string()))?;
        match tokio::time::timeout(Duration::from_secs(3), api.ping()).await {
            Ok(Ok(_)) => Ok(Docker {
                api,
                builtin: Default::default(),
                network: Default::default(),
                teardown: Default::default(),
                removals: Default::default(),
                kept: Default::default(),
            }),
            Ok(Err(e)) => Err(DockerError::Unreachable(e.to_string())),
            Err(_) => Err(DockerError::Unreachable("no answer within 3 s".into())),
        }
    }

    /// The networks that match `filters` (`label`, `name`…).
    async fn networks(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<bollard::models::Network>, DockerError> {
        let options = bollard::query_parameters::ListNetworksOptionsBuilder::default()
            .filters(filters)
            .build();
        self.api.list_networks(Some(options)).await.map_err(api)
    }

    /// The engine's version.
    pub(crate) async fn version(&self) -> Result<String, DockerError> {
        let v = self.api.version().await.map_err(api)?;
        Ok(v.version.unwrap_or_else(|| "unknown".into()))
    }
}

mod cleanup;
mod containers;
mod image;

pub(crate) use containers::{ContainerSpec, Gated, Output, container_name};
pub(crate) use image::builtin_tag;
