//! One running service, whatever runs it: a process group or a container. The supervisor
//! starts, waits on and stops services through this, never through the runtimes directly.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::docker::{ContainerSpec, Docker, Gated, Output};
use super::process::{Exit, RunningProcess};
use crate::config::StopSignal;
use crate::logs::{self, LogFile, Stream};
use crate::plan::{ContainerImage, ServicePlan};

/// A running service.
#[derive(Debug)]
pub(crate) enum Running {
    /// A process group.
    Process(RunningProcess),
    /// A container.
    Container(RunningContainer),
}

/// A running container.
#[derive(Debug)]
pub(crate) struct RunningContainer {
    docker: Docker,
    /// The container id.
    pub id: String,
    exit: watch::Receiver<Option<i64>>,
    /// True once the container's output has closed: its processes have ended.
    output_closed: watch::Receiver<bool>,
    waiter: JoinHandle<()>,
    logs: JoinHandle<()>,
}

impl Running {
    /// The process (group leader) pid, for processes.
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Running::Process(p) => Some(p.pid),
            Running::Container(_) => None,
        }
    }

    /// The pid's start time, for processes.
    pub(crate) fn start_time(&self) -> Option<u64> {
        match self {
            Running::Process(p) => p.start_time,
            Running::Container(_) => None,
        }
    }

    /// The container id, for containers.
    pub(crate) fn container_id(&self) -> Option<&str> {
        match self {
            Running::Process(_) => None,
            Running::Container(c) => Some(&c.id),
        }
    }

    /// The container, for exec probes and its own HEALTHCHECK.
    pub(crate) fn container(&self) -> Option<(Docker, String)> {
        match self {
            Running::Process(_) => None,
            Running::Container(c) => Some((c.docker.clone(), c.id.clone())),
        }
    }

    /// Waits for the service to end on its own (cancel-safe).
    pub(crate) async fn wait(&mut self) -> Exit {
        match self {
            Running::Process(p) => p.wait().await,
            Running::Container(c) => c.wait().await,
        }
    }

    /// Stops it: the stop signal, then SIGKILL after `timeout`.
    pub(crate) async fn stop(&mut self, signal: StopSignal, timeout: Duration) -> Exit {
        match self {
            Running::Process(p) => p.stop(signal.0, timeout).await,
            Running::Container(c) => c.stop(signal, timeout).await,
        }
    }

    /// SIGKILLs it at once.
    pub(crate) async fn kill(&mut self) -> Exit {
        match self {
            Running::Process(p) => p.kill().await,
            Running::Container(c) => {
                c.docker.kill(&c.id).await;
                let exit = c.wait().await;
                c.remove_once_exited();
                exit
            }
        }
    }
}

impl RunningContainer {
    /// Sends the stop signal and returns once the service has ended — its output closed —
    /// or was killed after `timeout`. The engine's own end of the container (network,
    /// mounts: ~100 ms) and its removal go on in the background ([`Docker::settle`]), so
    /// the services it depends on can be stopped meanwhile. Stopped on purpose, the
    /// container is not kept: a start creates it anew.
    async fn stop(&mut self, signal: StopSignal, timeout: Duration) -> Exit {
        if let Err(err) = self.docker.signal(&self.id, &signal.name()).await {
            tracing::warn!(container = %self.id, %err, "cannot signal the container");
        }
        let mut exit = self.exit.clone();
        let mut closed = self.output_closed.clone();
        let ended = async {
            tokio::select! {
                _ = exit.wait_for(Option::is_some) => {}
                _ = closed.wait_for(|c| *c) => {}
            }
        };
        if tokio::time::timeout(timeout, ended).await.is_err() {
            self.docker.kill(&self.id).await;
        }
        self.remove_once_exited();
        let code = *self.exit.borrow();
        Exit {
            code: code.and_then(|c| i32::try_from(c).ok()).filter(|c| *c >= 0),
            signal: None,
        }
    }

    /// In the background ([`Docker::settle`]): once the engine reports the exit (at most
    /// 30 s), removes the container.
    fn remove_once_exited(&self) {
        let docker = self.docker.clone();
        let id = self.id.clone();
        let mut exit = self.exit.clone();
        self.docker.track(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(30), exit.wait_for(Option::is_some)).await;
            let _ = docker.remove(&id).await;
        });
    }

    async fn wait(&mut self) -> Exit {
        let code = loop {
            if let Some(code) = *self.exit.borrow_and_update() {
                break code;
            }
            if self.exit.changed().await.is_err() {
                break -1;
            }
        };
        // Let the log stream drain what the container wrote last (bounded).
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.logs).await;
        Exit {
            code: i32::try_from(code).ok().filter(|c| *c >= 0),
            signal: None,
        }
    }
}

impl Drop for RunningContainer {
    fn drop(&mut self) {
        self.waiter.abort();
        self.logs.abort();
    }
}

/// Where a container service comes from and goes.
pub(crate) struct ContainerContext<'a> {
    /// The engine.
    pub docker: &'a Docker,
    /// The project.
    pub project: &'a str,
    /// The stack file's folder (mounted into built-in containers at the same path).
    pub stack_dir: &'a PathBuf,
    /// Progress of image preparation.
    pub note: &'a (dyn Fn(String) + Sync),
}

/// Prepares the image, the network and the container of `plan`, starts it (or opens its
/// prestarted container), and streams its output into `log`.
pub(crate) async fn start_container(
    cx: &ContainerContext<'_>,
    plan: &ServicePlan,
    image: &ContainerImage,
    command: Option<Vec<String>>,
    log: &LogFile,
    gated: Option<Gated>,
) -> Result<Running, String> {
    let docker = cx.docker;
    let id = match gated {
        Some(g) => g.open().await.map_err(|e| e.to_string())?,
        None => {
            let spec = container_spec(cx, plan, image, command, log).await?;
            docker.run(&spec).await.map_err(|e| e.to_string())?
        }
    };
    let (tx, rx) = watch::channel(None);
    let d = docker.clone();
    let cid = id.clone();
    let waiter = tokio::spawn(async move {
        let code = d.wait(&cid).await;
        let _ = tx.send(Some(code));
    });
    let chunks = docker
        .logs(&id)
        .map(|o| match o {
            Output::Out(b) => (Stream::Out, b),
            Output::Err(b) => (Stream::Err, b),
        })
        .boxed();
    let (closed_tx, output_closed) = watch::channel(false);
    let log = log.clone();
    let logs = tokio::spawn(async move {
        logs::capture_chunks(chunks, log).await;
        let _ = closed_tx.send(true);
    });
    Ok(Running::Container(RunningContainer {
        docker: docker.clone(),
        id,
        exit: rx,
        output_closed,
        waiter,
        logs,
    }))
}

/// Creates and starts the container of a built-in held at its gate, while its dependencies
/// come up; [`start_container`] opens it once they are ready.
pub(crate) async fn prestart_container(
    cx: &ContainerContext<'_>,
    plan: &ServicePlan,
    command: Option<Vec<String>>,
    log: &LogFile,
) -> Result<Gated, String> {
    let spec = container_spec(cx, plan, &ContainerImage::Builtin, command, log).await?;
    cx.docker.prestart(&spec).await.map_err(|e| e.to_string())
}

/// The image (pulled, built or imported as needed), the network, and the container's shape.
async fn container_spec(
    cx: &ContainerContext<'_>,
    plan: &ServicePlan,
    image: &ContainerImage,
    command: Option<Vec<String>>,
    log: &LogFile,
) -> Result<ContainerSpec, String> {
    let docker = cx.docker;
    let reference = match image {
        ContainerImage::Builtin => docker
            .builtin_image(cx.note)
            .await
            .map_err(|e| e.to_string())?,
        ContainerImage::Reference(r) => {
            docker
                .ensure_image(r, cx.note)
                .await
                .map_err(|e| e.to_string())?;
            r.clone()
        }
        ContainerImage::Build {
            context,
            dockerfile,
        } => {
            let tag = format!("stack-{}-{}:latest", cx.project, plan.name);
            (cx.note)(format!("building {tag} from {}", context.display()));
            let sink = |line: String| log.line(Stream::Out, &line);
            docker
                .build(context, dockerfile.as_deref(), &tag, &sink)
                .await
                .map_err(|e| e.to_string())?;
            tag
        }
    };
    let network = docker
        .ensure_network(cx.project)
        .await
        .map_err(|e| e.to_string())?;
    let builtin = matches!(image, ContainerImage::Builtin);
    let dir = cx.stack_dir.display().to_string();
    let spec = ContainerSpec {
        project: cx.project.to_string(),
        service: plan.name.clone(),
        image: reference,
        command,
        env: plan.env.clone(),
        ports: plan.ports.iter().map(|p| (p.host, p.container)).collect(),
        network,
        // Built-ins see the project at the same path, so their configuration, data and
        // relative paths mean what they mean on the host; they run as the host user, so
        // what they write stays the user's.
        binds: if builtin {
            vec![format!("{dir}:{dir}")]
        } else {
            Vec::new()
        },
        working_dir: builtin.then(|| plan.cwd.display().to_string()),
        user: builtin.then(|| format!("{}:{}", nix::unistd::getuid(), nix::unistd::getgid())),
        init: plan.init,
        stop_signal: plan.stop_signal.name(),
        stop_timeout: plan.stop_timeout,
    };
    Ok(spec)
}
