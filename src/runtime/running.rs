//! One running service, whatever runs it: a process group or a container. The supervisor
//! starts, waits on and stops services through this, never through the runtimes directly.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::docker::{ContainerSpec, Docker, Output};
use super::process::{Exit, RunningProcess};
use crate::config::StopSignal;
use crate::logs::{self, LogFile, Stream};
use crate::plan::{ContainerImage, ServicePlan};

/// A running service.
#[derive(Debug)]
pub enum Running {
    /// A process group.
    Process(RunningProcess),
    /// A container.
    Container(RunningContainer),
}

/// A running container.
#[derive(Debug)]
pub struct RunningContainer {
    docker: Docker,
    /// The container id.
    pub id: String,
    exit: watch::Receiver<Option<i64>>,
    waiter: JoinHandle<()>,
    logs: JoinHandle<()>,
}

impl Running {
    /// The process (group leader) pid, for processes.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Running::Process(p) => Some(p.pid),
            Running::Container(_) => None,
        }
    }

    /// The pid's start time, for processes.
    pub fn start_time(&self) -> Option<u64> {
        match self {
            Running::Process(p) => p.start_time,
            Running::Container(_) => None,
        }
    }

    /// The container id, for containers.
    pub fn container_id(&self) -> Option<&str> {
        match self {
            Running::Process(_) => None,
            Running::Container(c) => Some(&c.id),
        }
    }

    /// The container, for exec probes and its own HEALTHCHECK.
    pub fn container(&self) -> Option<(Docker, String)> {
        match self {
            Running::Process(_) => None,
            Running::Container(c) => Some((c.docker.clone(), c.id.clone())),
        }
    }

    /// Waits for the service to end on its own (cancel-safe).
    pub async fn wait(&mut self) -> Exit {
        match self {
            Running::Process(p) => p.wait().await,
            Running::Container(c) => c.wait().await,
        }
    }

    /// Stops it: the stop signal, then SIGKILL after `timeout`.
    pub async fn stop(&mut self, signal: StopSignal, timeout: Duration) -> Exit {
        match self {
            Running::Process(p) => p.stop(signal.0, timeout).await,
            Running::Container(c) => {
                // The engine sends the container's stop signal and kills after the timeout.
                if let Err(err) = c.docker.stop(&c.id, timeout).await {
                    tracing::warn!(container = %c.id, %err, "cannot stop the container");
                }
                c.wait().await
            }
        }
    }

    /// SIGKILLs it at once.
    pub async fn kill(&mut self) -> Exit {
        match self {
            Running::Process(p) => p.kill().await,
            Running::Container(c) => {
                c.docker.kill(&c.id).await;
                c.wait().await
            }
        }
    }
}

impl RunningContainer {
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
pub struct ContainerContext<'a> {
    /// The engine.
    pub docker: &'a Docker,
    /// The project.
    pub project: &'a str,
    /// The stack file's folder (mounted into built-in containers at the same path).
    pub stack_dir: &'a PathBuf,
    /// Progress of image preparation.
    pub note: &'a (dyn Fn(String) + Sync),
}

/// Prepares the image, the network and the container of `plan`, starts it, and streams its
/// output into `log`.
pub async fn start_container(
    cx: &ContainerContext<'_>,
    plan: &ServicePlan,
    image: &ContainerImage,
    command: Option<Vec<String>>,
    log: &LogFile,
) -> Result<Running, String> {
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
    let id = docker.run(&spec).await.map_err(|e| e.to_string())?;
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
    let logs = tokio::spawn(logs::capture_chunks(chunks, log.clone()));
    Ok(Running::Container(RunningContainer {
        docker: docker.clone(),
        id,
        exit: rx,
        waiter,
        logs,
    }))
}
