//! The runtime of this machine: services as process groups (forked from the spawner
//! thread, under the shim) and as containers of the local Docker engine.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use super::container::{self, ContainerContext, RunningContainer};
use super::docker::{Docker, Gated};
use super::health::{self, ProbeContext};
use super::process::{self, Launcher, RunningProcess};
use super::reaper::Reaper;
use super::{Exit, Identity, Runtime, Service, Start};
use crate::config::{RuntimeKind, StopSignal};
use crate::logs::LogFile;
use crate::plan::{ContainerImage, Launch, Plan, ServicePlan};

/// Processes and, when the plan has containers, the Docker engine.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    /// Starts processes and exec probes under the shim.
    launcher: Launcher,
    docker: Option<Docker>,
    /// Removes this run's containers if the supervisor dies (with `docker`).
    reaper: Option<Arc<Reaper>>,
    project: String,
    /// This supervisor run (`<pid>-<start time>`), on its containers.
    run: String,
    /// The stack file's folder.
    stack_dir: PathBuf,
    /// Probes' HTTP client.
    http: reqwest::Client,
}

impl Local {
    /// The runtime for `plan`, inside the current tokio runtime; `docker` is connected
    /// when the plan has containers.
    pub(crate) fn new(plan: &Plan, docker: Option<Docker>) -> std::io::Result<Local> {
        let run = super::reaper::run_id(&crate::state::ProcessId::current());
        let reaper = match &docker {
            Some(_) => Some(Arc::new(Reaper::start(
                &plan.project,
                &run,
                &plan.state_dir(),
            )?)),
            None => None,
        };
        Ok(Local {
            launcher: Launcher::new(&plan.state_dir())?,
            docker,
            reaper,
            run,
            project: plan.project.clone(),
            stack_dir: plan.dir.clone(),
            http: health::http_client(),
        })
    }

    /// Whether `plan` needs the Docker engine.
    pub(crate) fn needs_docker(plan: &Plan) -> bool {
        plan.services
            .iter()
            .any(|s| s.runtime == RuntimeKind::Container)
    }

    fn container_context<'a>(
        &'a self,
        docker: &'a Docker,
        note: &'a (dyn Fn(String) + Sync),
    ) -> ContainerContext<'a> {
        ContainerContext {
            docker,
            project: &self.project,
            run: &self.run,
            stack_dir: &self.stack_dir,
            note,
        }
    }

    async fn start_process(
        &self,
        plan: &ServicePlan,
        argv: &[String],
        log: &LogFile,
    ) -> Result<RunningProcess, String> {
        process::start(&self.launcher, argv, &plan.env, &plan.cwd, log)
            .await
            .map_err(|e| {
                let program = argv.first().map_or("", String::as_str);
                format!("cannot start `{program}`: {e}")
            })
    }
}

impl Runtime for Local {
    type Service = LocalService;
    type Prepared = Gated;
    type Prober = ProbeContext;

    fn prepare(
        &self,
        plan: &Arc<ServicePlan>,
        log: &LogFile,
    ) -> Option<impl Future<Output = Result<Gated, String>> + Send + 'static> {
        let Launch::Container {
            image: ContainerImage::Builtin,
            command,
        } = &plan.launch
        else {
            return None;
        };
        let docker = self.docker.clone()?;
        let this = self.clone();
        let plan = plan.clone();
        let command = command.clone();
        let log = log.clone();
        Some(async move {
            let note = |detail: String| log.note(&detail);
            let cx = this.container_context(&docker, &note);
            container::prestart_container(&cx, &plan, command, &log).await
        })
    }

    async fn discard(&self, prepared: Gated) {
        prepared.discard().await;
    }

    async fn start(&self, start: Start<'_, Gated>) -> Result<LocalService, String> {
        let Start {
            plan,
            log,
            note,
            prepared,
        } = start;
        if let Some(config) = &plan.builtin_config {
            config
                .write()
                .map_err(|e| format!("cannot write `{}`: {e}", config.path.display()))?;
        }
        match &plan.launch {
            Launch::Process { argv } => self
                .start_process(plan, argv, log)
                .await
                .map(LocalService::Process),
            Launch::Container { image, command } => {
                let Some(docker) = &self.docker else {
                    return Err("no Docker engine is connected".into());
                };
                let cx = self.container_context(docker, note);
                container::start_container(&cx, plan, image, command.clone(), log, prepared)
                    .await
                    .map(LocalService::Container)
            }
        }
    }

    fn prober(
        &self,
        plan: &ServicePlan,
        service: &LocalService,
        log_matched: Option<watch::Receiver<bool>>,
    ) -> ProbeContext {
        ProbeContext {
            http: self.http.clone(),
            env: plan.env.clone(),
            cwd: plan.cwd.clone(),
            log_matched,
            launcher: self.launcher.clone(),
            container: match service {
                LocalService::Process(_) => None,
                LocalService::Container(c) => Some(c.handle()),
            },
        }
    }

    fn refuses(&self, plan: &ServicePlan) -> Option<String> {
        (plan.runtime == RuntimeKind::Container && self.docker.is_none()).then(|| {
            format!(
                "`{}` runs as a container, and this stack was started without the Docker engine: `stack down`, then `stack up`",
                plan.name
            )
        })
    }

    /// Containers end in the engine in the background; waits for that, then removes the
    /// project network, so what answers `down` has left nothing behind.
    async fn finish(&self, project: &str) {
        let Some(docker) = &self.docker else {
            return;
        };
        docker.settle().await;
        if let Err(err) = docker
            .down(project, std::time::Duration::from_secs(10), false)
            .await
        {
            tracing::warn!(%err, "cannot remove the project's containers and network");
        }
        if let Some(reaper) = &self.reaper {
            reaper.goodbye().await;
        }
    }
}

/// A service of the local runtime.
#[derive(Debug)]
pub(crate) enum LocalService {
    /// A process group.
    Process(RunningProcess),
    /// A container.
    Container(RunningContainer),
}

impl Service for LocalService {
    fn identity(&self) -> Identity {
        match self {
            LocalService::Process(p) => p.identity(),
            LocalService::Container(c) => c.identity(),
        }
    }

    async fn wait(&mut self) -> Exit {
        match self {
            LocalService::Process(p) => p.wait().await,
            LocalService::Container(c) => c.wait().await,
        }
    }

    async fn signal(&mut self, signal: StopSignal) {
        match self {
            LocalService::Process(p) => p.signal(signal).await,
            LocalService::Container(c) => c.signal(signal).await,
        }
    }

    async fn stopped(&mut self) -> Exit {
        match self {
            LocalService::Process(p) => p.stopped().await,
            LocalService::Container(c) => c.stopped().await,
        }
    }

    async fn kill(&mut self) -> Exit {
        match self {
            LocalService::Process(p) => p.kill().await,
            LocalService::Container(c) => c.kill().await,
        }
    }

    fn keep_for_restart(&mut self) {
        if let LocalService::Container(c) = self {
            c.keep_for_restart();
        }
    }
}
