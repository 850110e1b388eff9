//! How to start, watch and stop one service: as a process ([`process`]) or a container
//! ([`docker`]). The supervisor decides when; this module knows how. The supervisor sees
//! only the [`Runtime`], [`Service`] and [`Prober`] traits: [`local::Local`] implements
//! them for real processes and containers, and the supervisor's unit tests with a fake
//! whose exits and health they script.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::StopSignal;
use crate::logs::LogFile;
use crate::plan::{ResolvedProbe, ServicePlan};

pub(crate) mod container;
pub(crate) mod docker;
pub(crate) mod health;
pub(crate) mod inside;
pub(crate) mod local;
pub(crate) mod process;
pub(crate) mod reaper;
pub(crate) mod shim;
pub(crate) mod unix;

/// Where services run. One value serves every service of a stack.
pub(crate) trait Runtime: Send + Sync + 'static {
    /// A running service.
    type Service: Service;
    /// A service made ready ahead of its dependencies (see [`Runtime::prepare`]).
    type Prepared: Send + 'static;
    /// What answers a running service's health checks.
    type Prober: Prober;

    /// Begins the part of a start that need not wait for the dependencies (a built-in's
    /// container, created, started and held at its gate), so it overlaps theirs. `None`
    /// when there is nothing to do ahead for this service.
    fn prepare(
        &self,
        plan: &Arc<ServicePlan>,
        log: &LogFile,
    ) -> Option<impl Future<Output = Result<Self::Prepared, String>> + Send + 'static>;

    /// Throws away what [`Runtime::prepare`] made when the service will not start.
    fn discard(&self, prepared: Self::Prepared) -> impl Future<Output = ()> + Send;

    /// Starts one run of a service. `Err` says why it could not start.
    fn start(
        &self,
        start: Start<'_, Self::Prepared>,
    ) -> impl Future<Output = Result<Self::Service, String>> + Send;

    /// What runs the health checks of `service`, a run of `plan`.
    fn prober(
        &self,
        plan: &ServicePlan,
        service: &Self::Service,
        log_matched: Option<watch::Receiver<bool>>,
    ) -> Self::Prober;

    /// Why this runtime cannot run `plan` (one added to a running stack), if so.
    fn refuses(&self, plan: &ServicePlan) -> Option<String> {
        let _ = plan;
        None
    }

    /// Once every service is down: lets the engine finish and removes what the project
    /// left behind (its network).
    fn finish(&self, project: &str) -> impl Future<Output = ()> + Send;
}

/// One start of a service.
pub(crate) struct Start<'a, P> {
    /// What to start.
    pub plan: &'a ServicePlan,
    /// Where its output goes.
    pub log: &'a LogFile,
    /// Progress while the runtime prepares (an image pull or build).
    pub note: &'a (dyn Fn(String) + Sync),
    /// What [`Runtime::prepare`] made for this start, if anything.
    pub prepared: Option<P>,
}

/// A running service: a process group or a container.
pub(crate) trait Service: Send + 'static {
    /// What identifies it to the user and to `state.json`.
    fn identity(&self) -> Identity;

    /// Completes when the service ends by itself (cancel-safe).
    fn wait(&mut self) -> impl Future<Output = Exit> + Send;

    /// Sends the stop signal.
    fn signal(&mut self, signal: StopSignal) -> impl Future<Output = ()> + Send;

    /// After [`Service::signal`]: completes once the service has ended (cancel-safe; the
    /// supervisor bounds it with the stop timeout and kills on expiry).
    fn stopped(&mut self) -> impl Future<Output = Exit> + Send;

    /// SIGKILLs it and waits for the end.
    fn kill(&mut self) -> impl Future<Output = Exit> + Send;

    /// It is being stopped to be started again: what it can keep for that start (a
    /// container and the files synced into it), it keeps.
    fn keep_for_restart(&mut self) {}
}

/// Runs a service's health checks where it runs.
pub(crate) trait Prober: Send + Sync + 'static {
    /// One probe; `Err` says why it failed.
    fn probe(
        &self,
        probe: &ResolvedProbe,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// The image's own HEALTHCHECK, as the engine reports it now; `None` when the service
    /// has none (a process, or an image without one).
    fn image_health(&self) -> impl Future<Output = Option<ContainerHealth>> + Send;
}

/// What identifies a running service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The process (group leader) pid, for processes.
    pub pid: Option<u32>,
    /// The pid's start time, for processes.
    pub start_time: Option<u64>,
    /// The container id, for containers.
    pub container_id: Option<String>,
}

/// A container's own HEALTHCHECK status, as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainerHealth {
    /// Within its start period, or not yet probed.
    Starting,
    /// Its last probes passed.
    Healthy,
    /// It failed `retries` probes in a row.
    Unhealthy,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    /// The exit code, if it exited.
    pub code: Option<i32>,
    /// The signal, if one killed it.
    pub signal: Option<i32>,
}

impl Exit {
    /// An end whose cause is not known (yet).
    pub(crate) const UNKNOWN: Exit = Exit {
        code: None,
        signal: None,
    };

    /// Exit code 0.
    pub(crate) fn success(self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {}", StopSignal(s).name()),
            (None, None) => f.write_str("an unknown status"),
        }
    }
}
