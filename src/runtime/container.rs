//! A service as a container: its image, network and shape ([`ContainerSpec`]), its start
//! (or the opening of its prestarted container), its output, its end and its removal.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::docker::{ContainerSpec, Docker, Gated, Output, container_name};
use super::{ContainerHealth, Exit, Identity, Service};
use crate::config::StopSignal;
use crate::logs::{self, LogFile, Stream};
use crate::plan::{ContainerImage, ServicePlan};

/// A running container.
#[derive(Debug)]
pub(crate) struct RunningContainer {
    docker: Docker,
    /// The container id.
    pub id: String,
    /// Its name.
    name: String,
    exit: watch::Receiver<Option<i64>>,
    /// True once the container's output has closed: its processes have ended.
    output_closed: watch::Receiver<bool>,
    waiter: JoinHandle<()>,
    logs: JoinHandle<()>,
    /// Stopped for a restart: the container is kept, so the next start reuses it (with
    /// what `watch: sync` copied in) unless its configuration or image changed.
    keep: bool,
}

impl Service for RunningContainer {
    fn identity(&self) -> Identity {
        Identity {
            pid: None,
            start_time: None,
            container_id: Some(self.id.clone()),
        }
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
        exit_of(Some(code))
    }

    async fn signal(&mut self, signal: StopSignal) {
        if let Err(err) = self.docker.signal(&self.id, &signal.name()).await {
            tracing::warn!(container = %self.id, %err, "cannot signal the container");
        }
    }

    /// Returns once the service has ended: its output closed. The engine's own end of the
    /// container (network, mounts: ~100 ms) and its removal go on in the background
    /// ([`Docker::settle`]), so the services it depends on can be stopped meanwhile.
    /// Stopped on purpose, the container is not kept (a start creates it anew), unless it
    /// is stopped for a restart ([`Service::keep_for_restart`]).
    async fn stopped(&mut self) -> Exit {
        let mut exit = self.exit.clone();
        let mut closed = self.output_closed.clone();
        tokio::select! {
            _ = exit.wait_for(Option::is_some) => {}
            _ = closed.wait_for(|c| *c) => {}
        }
        if self.keep {
            // Reused only once the engine, too, has it stopped (bounded: the supervisor
            // kills on its stop timeout).
            let _ = exit.wait_for(Option::is_some).await;
        }
        self.remove_once_exited();
        exit_of(*self.exit.borrow())
    }

    fn keep_for_restart(&mut self) {
        self.keep = true;
    }

    async fn kill(&mut self) -> Exit {
        self.docker.kill(&self.id).await;
        let exit = self.wait().await;
        self.remove_once_exited();
        exit
    }
}

/// The engine's exit code as an [`Exit`] (`None`: not reported yet).
fn exit_of(code: Option<i64>) -> Exit {
    Exit {
        code: code.and_then(|c| i32::try_from(c).ok()).filter(|c| *c >= 0),
        signal: None,
    }
}

impl RunningContainer {
    /// Runs probes of exec kind inside it, and reads its image's HEALTHCHECK.
    pub(crate) fn handle(&self) -> ContainerHandle {
        ContainerHandle {
            docker: self.docker.clone(),
            id: self.id.clone(),
        }
    }

    /// In the background ([`Docker::settle`]): once the engine reports the exit (at most
    /// 30 s), removes the container, unless it is kept for a restart.
    fn remove_once_exited(&self) {
        if self.keep {
            self.docker.keep(&self.name, &self.id);
            return;
        }
        let mut exit = self.exit.clone();
        self.docker.remove_once(&self.id, async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(30), exit.wait_for(Option::is_some)).await;
        });
    }
}

impl Drop for RunningContainer {
    fn drop(&mut self) {
        self.waiter.abort();
        self.logs.abort();
    }
}

/// A running container as its health checks see it.
#[derive(Debug, Clone)]
pub(crate) struct ContainerHandle {
    docker: Docker,
    id: String,
}

impl ContainerHandle {
    /// Runs `argv` inside the container; its exit code.
    pub(crate) async fn exec(&self, argv: &[String], timeout: Duration) -> Result<i64, String> {
        self.docker
            .exec(&self.id, argv, timeout)
            .await
            .map_err(|e| e.to_string())
    }

    /// The image's HEALTHCHECK status, if it has one.
    pub(crate) async fn health(&self) -> Option<ContainerHealth> {
        self.docker.health(&self.id).await
    }
}

/// Where a container service comes from and goes.
pub(crate) struct ContainerContext<'a> {
    /// The engine.
    pub docker: &'a Docker,
    /// The project.
    pub project: &'a str,
    /// The supervisor run.
    pub run: &'a str,
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
) -> Result<RunningContainer, String> {
    let docker = cx.docker;
    let name = container_name(cx.project, &plan.name);
    let id = match gated {
        Some(g) => g.open().await.map_err(|e| e.to_string())?,
        None => match docker.resume_kept(&name).await {
            Some(id) => id,
            None => {
                let spec = container_spec(cx, plan, image, command, log).await?;
                docker.run(&spec).await.map_err(|e| e.to_string())?
            }
        },
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
    Ok(RunningContainer {
        docker: docker.clone(),
        id,
        name,
        exit: rx,
        output_closed,
        waiter,
        logs,
        keep: false,
    })
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
    let image_id = docker.image_id(&reference).await;
    let network = docker
        .ensure_network(cx.project)
        .await
        .map_err(|e| e.to_string())?;
    let builtin = matches!(image, ContainerImage::Builtin);
    let dir = cx.stack_dir.display().to_string();
    let spec = ContainerSpec {
        project: cx.project.to_string(),
        run: cx.run.to_string(),
        service: plan.name.clone(),
        image: reference,
        image_id,
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
