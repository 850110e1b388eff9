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
//!   `dev.stack.config-hash` (a changed service is recreated) and publish their ports on
//!   127.0.0.1 only; they reach host processes as `host.docker.internal`.
//! - `down` finds everything by label, so it needs no state and survives a killed supervisor.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, StopContainerOptionsBuilder,
};
use bytes::Bytes;
use futures::{Stream, StreamExt};

/// Labels on everything `stack` creates.
pub(crate) const PROJECT_LABEL: &str = "dev.stack.project";
/// The service a container runs.
pub(crate) const SERVICE_LABEL: &str = "dev.stack.service";
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
}

/// One container to run.
#[derive(Debug, Clone)]
pub(crate) struct ContainerSpec {
    /// The project.
    pub project: String,
    /// The service.
    pub service: String,
    /// The image reference.
    pub image: String,
    /// The command (overrides the image's).
    pub command: Option<Vec<String>>,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// `(host, container)` ports, published on 127.0.0.1.
    pub ports: Vec<(u16, u16)>,
    /// The project network.
    pub network: String,
    /// Bind mounts `host:container[:ro]`.
    pub binds: Vec<String>,
    /// Working folder inside.
    pub working_dir: Option<String>,
    /// `uid:gid` to run as.
    pub user: Option<String>,
    /// An init process as PID 1.
    pub init: bool,
    /// The stop signal (`SIGTERM`…).
    pub stop_signal: String,
    /// Grace period before SIGKILL.
    pub stop_timeout: Duration,
}

impl ContainerSpec {
    /// The container's name.
    pub(crate) fn name(&self) -> String {
        container_name(&self.project, &self.service)
    }

    /// A hash of everything that shapes the container.
    pub(crate) fn config_hash(&self) -> String {
        // FNV-1a over the whole specification: stable across runs.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in format!("{self:?}").bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// A prestarted built-in container waiting at its gate (see [`super::inside`]).
pub(crate) struct Gated {
    docker: Docker,
    /// The container id.
    pub id: String,
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl std::fmt::Debug for Gated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gated").field("id", &self.id).finish()
    }
}

impl Gated {
    /// Lets the service start; its container id.
    pub(crate) async fn open(mut self) -> Result<String, DockerError> {
        use tokio::io::AsyncWriteExt;
        let write = async {
            self.input.write_all(super::inside::OPEN).await?;
            self.input.flush().await
        };
        if let Err(e) = write.await {
            let _ = self.docker.remove(&self.id).await;
            return Err(DockerError::Api(format!("cannot open the gate: {e}")));
        }
        Ok(self.id)
    }

    /// Not needed after all: removes the container.
    pub(crate) async fn discard(self) {
        let _ = self.docker.remove(&self.id).await;
    }
}

/// `<project>-<service>`.
pub(crate) fn container_name(project: &str, service: &str) -> String {
    format!("{project}-{service}")
}

/// A stream chunk of a container's output.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// Standard output.
    Out(Bytes),
    /// Standard error.
    Err(Bytes),
}

/// A container of a project, as `down` and `doctor` see it.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// Its id.
    pub id: String,
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
            }),
            Ok(Err(e)) => Err(DockerError::Unreachable(e.to_string())),
            Err(_) => Err(DockerError::Unreachable("no answer within 3 s".into())),
        }
    }

    /// The engine's version.
    pub(crate) async fn version(&self) -> Result<String, DockerError> {
        let v = self.api.version().await.map_err(api)?;
        Ok(v.version.unwrap_or_else(|| "unknown".into()))
    }

    async fn has_image(&self, reference: &str) -> bool {
        self.api.inspect_image(reference).await.is_ok()
    }

    /// The built-in image for the running executable, built (imported) when missing;
    /// older built-in images are removed. `note` receives progress messages.
    pub(crate) async fn builtin_image(
        &self,
        note: &(dyn Fn(String) + Sync),
    ) -> Result<String, DockerError> {
        let exe = std::env::current_exe()
            .map_err(|e| DockerError::Api(format!("cannot find the stack executable: {e}")))?;
        let hash = exe_hash(&exe)
            .map_err(|e| DockerError::Api(format!("cannot read `{}`: {e}", exe.display())))?;
        let tag = format!("{}-{}", env!("CARGO_PKG_VERSION"), &hash[..12]);
        let reference = format!("{BUILTIN_REPO}:{tag}");
        let _one_at_a_time = self.builtin.lock().await;
        if self.has_image(&reference).await {
            return Ok(reference);
        }
        note(format!("building image {reference} from {}", exe.display()));
        let exe2 = exe.clone();
        let tar = tokio::task::spawn_blocking(move || rootfs_tar(&exe2))
            .await
            .map_err(|e| DockerError::Api(e.to_string()))?
            .map_err(|e| DockerError::Build {
                image: reference.clone(),
                reason: e.to_string(),
            })?;
        note(format!("importing {} MB", tar.len() / (1024 * 1024)));
        let options = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(BUILTIN_REPO)
            .tag(&tag)
            .changes(vec![
                "ENTRYPOINT [\"/stack\"]".to_string(),
                "ENV PATH=/".to_string(),
                "WORKDIR /".to_string(),
            ])
            .build();
        let mut progress = self.api.create_image(
            Some(options),
            Some(bollard::body_full(Bytes::from(tar))),
            None,
        );
        while let Some(item) = progress.next().await {
            item.map_err(|e| DockerError::Build {
                image: reference.clone(),
                reason: e.to_string(),
            })?;
        }
        if !self.has_image(&reference).await {
            return Err(DockerError::Build {
                image: reference,
                reason: "the engine did not keep the imported image".into(),
            });
        }
        self.remove_old_builtins(&reference).await;
        note(format!("built {reference}"));
        Ok(reference)
    }

    async fn remove_old_builtins(&self, keep: &str) {
        let mut filters = HashMap::new();
        filters.insert("reference".to_string(), vec![format!("{BUILTIN_REPO}:*")]);
        let options = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let Ok(images) = self.api.list_images(Some(options)).await else {
            return;
        };
        for img in images {
            let tags = img.repo_tags.clone();
            if tags.iter().any(|t| t == keep) {
                continue;
            }
            for t in tags {
                let _ = self
                    .api
                    .remove_image(&t, Some(RemoveImageOptionsBuilder::default().build()), None)
                    .await;
            }
        }
    }

    /// Makes sure `reference` is present: pulls it when missing, reporting progress.
    pub(crate) async fn ensure_image(
        &self,
        reference: &str,
        note: &(dyn Fn(String) + Sync),
    ) -> Result<(), DockerError> {
        if self.has_image(reference).await {
            return Ok(());
        }
        note(format!("pulling {reference}"));
        let options = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let mut stream = self.api.create_image(Some(options), None, None);
        let mut layers: HashMap<String, String> = HashMap::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| DockerError::ImageMissing {
                image: reference.to_string(),
                reason: e.to_string(),
            })?;
            if let (Some(id), Some(status)) = (info.id, info.status)
                && !status.starts_with("Pulling from")
            {
                // One line per layer and step ("Downloading", "Extracting", …), not one per
                // progress tick.
                if layers.insert(id.clone(), status.clone()).as_ref() == Some(&status) {
                    continue;
                }
                let done = layers
                    .values()
                    .filter(|s| s.starts_with("Pull complete") || s.starts_with("Already exists"))
                    .count();
                note(format!(
                    "pulling {reference}: {done}/{} layers ({id}: {status})",
                    layers.len()
                ));
            }
        }
        if self.has_image(reference).await {
            Ok(())
        } else {
            Err(DockerError::ImageMissing {
                image: reference.to_string(),
                reason: "the pull ended without the image".into(),
            })
        }
    }

    /// Builds `tag` from the folder `context`, each output line to `log`.
    pub(crate) async fn build(
        &self,
        context: &Path,
        dockerfile: Option<&str>,
        tag: &str,
        log: &(dyn Fn(String) + Sync),
    ) -> Result<(), DockerError> {
        let dir = context.to_path_buf();
        let tar = tokio::task::spawn_blocking(move || context_tar(&dir))
            .await
            .map_err(|e| DockerError::Api(e.to_string()))?
            .map_err(|e| DockerError::Build {
                image: tag.to_string(),
                reason: format!("cannot pack `{}`: {e}", context.display()),
            })?;
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile.unwrap_or("Dockerfile"))
            .t(tag)
            .rm(true)
            .build();
        let mut stream =
            self.api
                .build_image(options, None, Some(bollard::body_full(Bytes::from(tar))));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| DockerError::Build {
                image: tag.to_string(),
                reason: e.to_string(),
            })?;
            if let Some(s) = info.stream {
                for line in s.lines().filter(|l| !l.trim().is_empty()) {
                    log(line.to_string());
                }
            }
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::Build {
                    image: tag.to_string(),
                    reason: detail,
                });
            }
        }
        Ok(())
    }

    /// The project's bridge network (its id), created when missing. Looked up by label and
    /// name rather than by name alone: the engine allows two networks of one name.
    pub(crate) async fn ensure_network(&self, project: &str) -> Result<String, DockerError> {
        let name = format!("stack_{project}");
        let _one_at_a_time = self.network.lock().await;
        let filters = HashMap::from([
            (
                "label".to_string(),
                vec![format!("{PROJECT_LABEL}={project}")],
            ),
            ("name".to_string(), vec![name.clone()]),
        ]);
        let existing = self
            .api
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api)?;
        if let Some(id) = existing
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name.as_str()))
            .find_map(|n| n.id)
        {
            return Ok(id);
        }
        let labels = HashMap::from([(PROJECT_LABEL.to_string(), project.to_string())]);
        let request = NetworkCreateRequest {
            name,
            driver: Some("bridge".into()),
            labels: Some(labels),
            ..Default::default()
        };
        let created = self.api.create_network(request).await.map_err(api)?;
        Ok(created.id)
    }

    /// Creates (or recreates, when its configuration changed) and starts the container;
    /// returns its id.
    pub(crate) async fn run(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let id = self.create(spec, false).await?;
        self.api
            .start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(api)?;
        Ok(id)
    }

    /// Creates and starts the container of a built-in (whose image has `stack __gate`) held
    /// at its gate: everything but the service itself is ready. [`Gated::open`] starts it.
    pub(crate) async fn prestart(&self, spec: &ContainerSpec) -> Result<Gated, DockerError> {
        let mut gated = spec.clone();
        gated.command = Some(
            std::iter::once(super::inside::GATE.to_string())
                .chain(spec.command.clone().unwrap_or_default())
                .collect(),
        );
        // Always a fresh container (`create` replaces any other): its stdin is ours alone.
        let id = self.create(&gated, true).await?;
        let options = bollard::query_parameters::AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stream(true)
            .build();
        let attached = match self.api.attach_container(&id, Some(options)).await {
            Ok(a) => a,
            Err(e) => {
                let _ = self.remove(&id).await;
                return Err(api(e));
            }
        };
        if let Err(e) = self
            .api
            .start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            let _ = self.remove(&id).await;
            return Err(api(e));
        }
        Ok(Gated {
            docker: self.clone(),
            id,
            input: attached.input,
        })
    }

    /// Creates the container unless one with the same configuration exists (stopped);
    /// its id. With `stdin` (attached by the caller), always a new one.
    async fn create(&self, spec: &ContainerSpec, stdin: bool) -> Result<String, DockerError> {
        let name = spec.name();
        let hash = spec.config_hash();
        if let Ok(existing) = self
            .api
            .inspect_container(
                &name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            let same = existing
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(HASH_LABEL))
                .is_some_and(|h| h == &hash);
            let id = existing.id.clone().unwrap_or_default();
            let running = existing
                .state
                .as_ref()
                .and_then(|s| s.running)
                .unwrap_or(false);
            if same && !running && !stdin {
                return Ok(id);
            }
            self.remove(&id).await?;
        }
        let labels = HashMap::from([
            (PROJECT_LABEL.to_string(), spec.project.clone()),
            (SERVICE_LABEL.to_string(), spec.service.clone()),
            (HASH_LABEL.to_string(), hash),
        ]);
        let mut port_bindings = HashMap::new();
        let mut exposed = Vec::new();
        for (host, container) in &spec.ports {
            let key = format!("{container}/tcp");
            exposed.push(key.clone());
            port_bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(host.to_string()),
                }]),
            );
        }
        let endpoint = EndpointSettings {
            aliases: Some(vec![spec.service.clone()]),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            exposed_ports: Some(exposed),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            stop_signal: Some(spec.stop_signal.clone()),
            stop_timeout: Some(spec.stop_timeout.as_secs() as i64),
            open_stdin: stdin.then_some(true),
            attach_stdin: stdin.then_some(true),
            stdin_once: stdin.then_some(true),
            host_config: Some(HostConfig {
                init: Some(spec.init),
                port_bindings: Some(port_bindings),
                binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
                network_mode: Some(spec.network.clone()),
                extra_hosts: Some(vec!["host.docker.internal:host-gateway".into()]),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(spec.network.clone(), endpoint)])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .api
            .create_container(Some(options), body)
            .await
            .map_err(api)?;
        Ok(created.id)
    }

    /// The container's output from now on, stdout and stderr apart, until it stops.
    pub(crate) fn logs(&self, id: &str) -> impl Stream<Item = Output> + Send + 'static {
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        self.api
            .logs(id, Some(options))
            .filter_map(|item| async move {
                match item {
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        Some(Output::Err(message))
                    }
                    Ok(
                        bollard::container::LogOutput::StdOut { message }
                        | bollard::container::LogOutput::Console { message },
                    ) => Some(Output::Out(message)),
                    _ => None,
                }
            })
    }

    /// Waits for the container to stop; its exit code.
    pub(crate) async fn wait(&self, id: &str) -> i64 {
        let mut s = self
            .api
            .wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
        match s.next().await {
            Some(Ok(r)) => return r.status_code,
            // A non-zero exit comes back as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                return code;
            }
            _ => {}
        }
        self.api
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .ok()
            .and_then(|c| c.state.and_then(|s| s.exit_code))
            .unwrap_or(-1)
    }

    /// Stops the container: its stop signal, then SIGKILL after `timeout`.
    pub(crate) async fn stop(&self, id: &str, timeout: Duration) -> Result<(), DockerError> {
        let options = StopContainerOptionsBuilder::default()
            .t(timeout.as_secs() as i32)
            .build();
        tolerating(
            self.api.stop_container(id, Some(options)).await,
            &[304, 404],
        )
    }

    /// SIGKILLs the container.
    pub(crate) async fn kill(&self, id: &str) {
        let _ = self.signal(id, "SIGKILL").await;
    }

    /// Sends `signal` (`SIGTERM`…) to the container's main process.
    pub(crate) async fn signal(&self, id: &str, signal: &str) -> Result<(), DockerError> {
        let options = bollard::query_parameters::KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        tolerating(
            self.api.kill_container(id, Some(options)).await,
            &[404, 409],
        )
    }

    /// Runs `work` (the engine's end of a stopped container) in the background; see
    /// [`Docker::settle`].
    pub(crate) fn track(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.teardown.spawn(work);
    }

    /// Waits for every tracked teardown (and takes new ones again after).
    pub(crate) async fn settle(&self) {
        self.teardown.close();
        self.teardown.wait().await;
        self.teardown.reopen();
    }

    /// Removes the container (forcefully).
    pub(crate) async fn remove(&self, id: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        tolerating(self.api.remove_container(id, Some(options)).await, &[404])
    }

    /// Runs `argv` inside the container; its exit code.
    pub(crate) async fn exec(
        &self,
        id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<i64, DockerError> {
        let run = async {
            let exec = self
                .api
                .create_exec(
                    id,
                    bollard::models::ExecConfig {
                        cmd: Some(argv.to_vec()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map_err(api)?;
            if let bollard::exec::StartExecResults::Attached { mut output, .. } =
                self.api.start_exec(&exec.id, None).await.map_err(api)?
            {
                while output.next().await.is_some() {}
            }
            let inspect = self.api.inspect_exec(&exec.id).await.map_err(api)?;
            Ok(inspect.exit_code.unwrap_or(-1))
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| DockerError::Api(format!("no exit within {} ms", timeout.as_millis())))?
    }

    /// The image's own HEALTHCHECK status, if it has one.
    pub(crate) async fn health(&self, id: &str) -> Option<super::ContainerHealth> {
        use bollard::models::HealthStatusEnum;
        let c = self
            .api
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .ok()?;
        match c.state?.health?.status? {
            HealthStatusEnum::STARTING => Some(super::ContainerHealth::Starting),
            HealthStatusEnum::HEALTHY => Some(super::ContainerHealth::Healthy),
            HealthStatusEnum::UNHEALTHY => Some(super::ContainerHealth::Unhealthy),
            HealthStatusEnum::EMPTY | HealthStatusEnum::NONE => None,
        }
    }

    /// The containers of `project`, by label.
    pub(crate) async fn containers(&self, project: &str) -> Result<Vec<Summary>, DockerError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{PROJECT_LABEL}={project}")],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self.api.list_containers(Some(options)).await.map_err(api)?;
        Ok(list
            .into_iter()
            .map(|c| Summary {
                id: c.id.unwrap_or_default(),
            })
            .collect())
    }

    /// Stops and removes every container of `project`, its network, and (with `volumes`)
    /// its volumes — found by label, without any state. Returns how many containers.
    pub(crate) async fn down(
        &self,
        project: &str,
        timeout: Duration,
        volumes: bool,
    ) -> Result<usize, DockerError> {
        let containers = self.containers(project).await?;
        let stops = containers.iter().map(|c| async move {
            let _ = self.stop(&c.id, timeout).await;
            self.remove(&c.id).await
        });
        for r in futures::future::join_all(stops).await {
            r?;
        }
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{PROJECT_LABEL}={project}")],
        )]);
        let nets = self
            .api
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(api)?;
        for n in nets {
            // By id: two networks may share a name.
            if let Some(id) = n.id {
                let _ = self.api.remove_network(&id).await;
            }
        }
        if volumes {
            let vols = self
                .api
                .list_volumes(Some(
                    ListVolumesOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                ))
                .await
                .map_err(api)?;
            for v in vols.volumes.unwrap_or_default() {
                let _ = self
                    .api
                    .remove_volume(
                        &v.name,
                        None::<bollard::query_parameters::RemoveVolumeOptions>,
                    )
                    .await;
            }
        }
        Ok(containers.len())
    }
}

/// sha256 of the executable, cached by (path, size, mtime) under the user's cache folder:
/// hashing a large binary on every `up` would cost a second.
fn exe_hash(exe: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let meta = std::fs::metadata(exe)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = format!("{}|{}|{mtime}", exe.display(), meta.len());
    let cache = cache_dir().map(|d| d.join("exe-hashes.json"));
    let mut known: HashMap<String, String> = cache
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if let Some(h) = known.get(&key) {
        return Ok(h.clone());
    }
    let mut file = std::fs::File::open(exe)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(p) = cache {
        known.retain(|k, _| !k.starts_with(&format!("{}|", exe.display())));
        known.insert(key, hash.clone());
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&p, serde_json::to_string(&known).unwrap_or_default());
    }
    Ok(hash)
}

fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("stack"))
}

/// The built-in image's root file system: `/stack`, the shared libraries it links (and
/// the dynamic loader) at their own paths, a minimal `/etc`, and `/tmp`.
fn rootfs_tar(exe: &Path) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let binary = stripped(exe).unwrap_or_else(|| exe.to_path_buf());
    append_file(&mut tar, &binary, "stack", 0o755)?;
    if binary != exe {
        let _ = std::fs::remove_file(&binary);
    }
    for lib in linked_libraries(exe)? {
        let inside = lib.strip_prefix("/").unwrap_or(&lib).to_path_buf();
        // Libraries are often symlinks: store the target's bytes under the linked name.
        let real = std::fs::canonicalize(&lib)?;
        append_file(&mut tar, &real, &inside.to_string_lossy(), 0o755)?;
    }
    for (path, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/:/stack\nnobody:x:65534:65534:nobody:/:/stack\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/nsswitch.conf", "hosts: files dns\n"),
    ] {
        append_bytes(&mut tar, path, text.as_bytes(), 0o644)?;
    }
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o1777);
    dir.set_size(0);
    tar.append_data(&mut dir, "tmp", std::io::empty())?;
    tar.into_inner()
}

/// A copy of `exe` without debug sections, when `strip` is installed (smaller image).
fn stripped(exe: &Path) -> Option<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("stack-image-{}-{n}", std::process::id()));
    let ok = std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(exe)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(out)
}

/// The shared libraries `exe` needs (`ldd`), including the dynamic loader.
fn linked_libraries(exe: &Path) -> std::io::Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd").arg(exe).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

fn append_file(
    tar: &mut tar::Builder<Vec<u8>>,
    src: &Path,
    inside: &str,
    mode: u32,
) -> std::io::Result<()> {
    let mut f = std::fs::File::open(src)?;
    let len = f.metadata()?.len();
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(mode);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, inside, &mut f)
}

fn append_bytes(
    tar: &mut tar::Builder<Vec<u8>>,
    inside: &str,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(mode);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, inside, bytes)
}

/// A build context: the folder as a tar (no `.git`, no `.stack`).
fn context_tar(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    fn walk(tar: &mut tar::Builder<Vec<u8>>, root: &Path, dir: &Path) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            if name == ".git" || name == ".stack" || name == "target" {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if entry.file_type()?.is_dir() {
                tar.append_dir(&rel, &path)?;
                walk(tar, root, &path)?;
            } else {
                tar.append_path_with_name(&path, &rel)?;
            }
        }
        Ok(())
    }
    walk(&mut tar, dir, dir)?;
    let mut buf = tar.into_inner()?;
    buf.flush()?;
    Ok(buf)
}
