//! Containers: the project network, a container's shape and creation, its gate, output,
//! end, signals, exec and HEALTHCHECK.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::{
    Docker, DockerError, HASH_LABEL, PROJECT_LABEL, RUN_LABEL, SERVICE_LABEL, api, tolerating,
};

/// One container to run.
#[derive(Debug, Clone)]
pub(crate) struct ContainerSpec {
    /// The project.
    pub project: String,
    /// The supervisor run (a container of another run is never reused).
    pub run: String,
    /// The service.
    pub service: String,
    /// The image reference.
    pub image: String,
    /// The image's id: a rebuilt or newly pulled image under the same name recreates the
    /// container.
    #[allow(dead_code, reason = "read through `Debug`, by `config_hash`")]
    pub image_id: Option<String>,
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
            self.input.write_all(crate::runtime::inside::OPEN).await?;
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

impl Docker {
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
        let existing = self.networks(&filters).await?;
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
            std::iter::once(crate::runtime::inside::GATE.to_string())
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
            let id = existing.id.clone().unwrap_or_default();
            if self.removal_pending(&id) {
                // Stopped and on its way out (see [`Docker::remove_once`]): never reused.
                self.removed(&id).await;
                return self.create_new(spec, &name, hash, stdin).await;
            }
            let same = existing
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(HASH_LABEL))
                .is_some_and(|h| h == &hash);
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
        self.create_new(spec, &name, hash, stdin).await
    }

    /// Creates the container `name` (none of that name exists).
    async fn create_new(
        &self,
        spec: &ContainerSpec,
        name: &str,
        hash: String,
        stdin: bool,
    ) -> Result<String, DockerError> {
        let labels = HashMap::from([
            (PROJECT_LABEL.to_string(), spec.project.clone()),
            (SERVICE_LABEL.to_string(), spec.service.clone()),
            (RUN_LABEL.to_string(), spec.run.clone()),
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
        let options = CreateContainerOptionsBuilder::default().name(name).build();
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

    /// Removes the container `id` in the background once `ended` completes (the engine's
    /// end of a stopped container); see [`Docker::settle`]. Until it is gone, a `create`
    /// of its name waits for it rather than reuse it.
    pub(crate) fn remove_once(
        &self,
        id: &str,
        ended: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (done, pending) = tokio::sync::watch::channel(false);
        self.pending_removals().insert(id.to_string(), pending);
        let docker = self.clone();
        let id = id.to_string();
        self.teardown.spawn(async move {
            ended.await;
            let _ = docker.remove(&id).await;
            docker.pending_removals().remove(&id);
            let _ = done.send(true);
        });
    }

    /// Keeps the stopped container `id` (named `name`) for [`Docker::resume_kept`].
    pub(crate) fn keep(&self, name: &str, id: &str) {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_string(), id.to_string());
    }

    /// Starts the container kept under `name` again, as it is (no new image, no new
    /// container); its id, or `None` when none was kept or it cannot start (then it is
    /// removed, and the caller creates a new one).
    pub(crate) async fn resume_kept(&self, name: &str) -> Option<String> {
        let id = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name)?;
        match self
            .api
            .start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            Ok(()) => Some(id),
            Err(err) => {
                tracing::warn!(container = %id, %err, "cannot start the kept container; creating a new one");
                let _ = self.remove(&id).await;
                None
            }
        }
    }

    fn pending_removals(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, tokio::sync::watch::Receiver<bool>>> {
        self.removals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn removal_pending(&self, id: &str) -> bool {
        self.pending_removals().contains_key(id)
    }

    /// Waits until the pending removal of `id` (if any) is done.
    async fn removed(&self, id: &str) {
        let pending = self.pending_removals().get(id).cloned();
        if let Some(mut pending) = pending {
            let _ = pending.wait_for(|done| *done).await;
        }
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
        // Gone, or already being removed (the reaper and `down` may race).
        tolerating(
            self.api.remove_container(id, Some(options)).await,
            &[404, 409],
        )
    }

    /// Copies host files into a running container (`watch: sync`), as one tar upload of
    /// `(host file, path in the container)` pairs, and removes `removed` (paths in the
    /// container) with `rm` inside it.
    pub(crate) async fn sync(
        &self,
        id: &str,
        files: &[(std::path::PathBuf, String)],
        removed: &[String],
    ) -> Result<(), DockerError> {
        if !files.is_empty() {
            let mut tar = tar::Builder::new(Vec::new());
            for (host, inside) in files {
                let name = inside.trim_start_matches('/');
                tar.append_path_with_name(host, name).map_err(|e| {
                    DockerError::Api(format!("cannot read `{}`: {e}", host.display()))
                })?;
            }
            let bytes = tar
                .into_inner()
                .map_err(|e| DockerError::Api(format!("cannot pack the files: {e}")))?;
            let options = bollard::query_parameters::UploadToContainerOptionsBuilder::new()
                .path("/")
                .build();
            self.api
                .upload_to_container(id, Some(options), bollard::body_full(bytes.into()))
                .await
                .map_err(api)?;
        }
        if !removed.is_empty() {
            let mut argv = vec!["rm".to_string(), "-rf".to_string(), "--".to_string()];
            argv.extend(removed.iter().cloned());
            let code = self.exec(id, &argv, Duration::from_secs(30)).await?;
            match code {
                0 => {}
                126 | 127 => {
                    return Err(DockerError::Api(
                        "the deleted files stay in the container: it has no `rm` to remove them"
                            .into(),
                    ));
                }
                code => {
                    return Err(DockerError::Api(format!(
                        "`rm` of the deleted files exited with {code}"
                    )));
                }
            }
        }
        Ok(())
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
    pub(crate) async fn health(&self, id: &str) -> Option<crate::runtime::ContainerHealth> {
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
            HealthStatusEnum::STARTING => Some(crate::runtime::ContainerHealth::Starting),
            HealthStatusEnum::HEALTHY => Some(crate::runtime::ContainerHealth::Healthy),
            HealthStatusEnum::UNHEALTHY => Some(crate::runtime::ContainerHealth::Unhealthy),
            HealthStatusEnum::EMPTY | HealthStatusEnum::NONE => None,
        }
    }
}
