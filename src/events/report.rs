//! The `ps` document (SPEC §2): the stable JSON shape of `stack ps --json`, also printed by
//! `up --json` / `up -d` once healthy.

use indexmap::IndexMap;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::event::{Health, State, Status};
use crate::config::RuntimeKind;
use crate::plan::Plan;

/// `stack ps --json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PsDocument {
    /// The project name.
    pub project: String,
    /// The supervisor's pid, when one runs.
    pub supervisor_pid: Option<u32>,
    /// Every service, in start order.
    pub services: Vec<PsService>,
    /// Where model calls go (SPEC §4.4), when the stack has a gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<crate::services::cassette::Mode>,
    /// The dashboard's URL (with its token), when the supervisor serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
    /// The port of the supervisor's OTLP receiver and dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_port: Option<u16>,
}

/// One service of [`PsDocument`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PsService {
    /// Its name.
    pub name: String,
    /// `process` or `container`.
    pub runtime: RuntimeKind,
    /// Which built-in it is, if one.
    #[serde(default)]
    pub builtin: Option<crate::config::BuiltinKind>,
    /// created | starting | running | exited | failed | stopped
    pub state: State,
    /// none | starting | healthy | unhealthy
    pub health: Health,
    /// The process (group leader) pid.
    pub pid: Option<u32>,
    /// The container id.
    pub container_id: Option<String>,
    /// Ports by name.
    pub ports: IndexMap<String, PsPort>,
    /// Restarts so far.
    pub restarts: u32,
    /// When the current run started.
    pub started_at: Option<Timestamp>,
    /// The exit code of its last run, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the current run started, when not by `up` (`restart requested`,
    /// `restart policy: exited with exit code 1`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_reason: Option<String>,
}

/// A port of [`PsService`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PsPort {
    /// The host port.
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl PsDocument {
    /// The document for `plan` with these statuses.
    pub(crate) fn new(
        plan: &Plan,
        supervisor_pid: Option<u32>,
        statuses: &[(String, Status)],
    ) -> PsDocument {
        let services = plan
            .services
            .iter()
            .map(|svc| {
                let status = statuses
                    .iter()
                    .find(|(n, _)| n == &svc.name)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_else(|| Status::created(svc.health.is_some()));
                PsService {
                    name: svc.name.clone(),
                    runtime: svc.runtime,
                    builtin: svc.builtin,
                    state: status.state,
                    health: status.health,
                    pid: status.pid,
                    container_id: status.container_id,
                    ports: svc
                        .ports
                        .iter()
                        .map(|p| {
                            (
                                p.name.clone(),
                                PsPort {
                                    port: p.host,
                                    url: format!("http://127.0.0.1:{}", p.host),
                                },
                            )
                        })
                        .collect(),
                    restarts: status.restarts,
                    started_at: status.started_at,
                    exit_code: status
                        .exit_code
                        .filter(|_| matches!(status.state, State::Exited | State::Failed)),
                    start_reason: status.start_reason,
                }
            })
            .collect();
        PsDocument {
            project: plan.project.clone(),
            supervisor_pid,
            services,
            llm: plan.llm,
            dashboard: plan
                .telemetry
                .as_ref()
                .map(crate::plan::Telemetry::dashboard_url),
            telemetry_port: plan.telemetry.as_ref().map(|t| t.port),
        }
    }
}

impl PsDocument {
    /// The endpoints as environment variables: `STACK_PROJECT`, and for every service X with
    /// a port `STACK_X_URL`, `STACK_X_HOST`, `STACK_X_PORT` (its main port), as a process on
    /// this machine sees them.
    pub(crate) fn endpoint_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("STACK_PROJECT".to_string(), self.project.clone())];
        for s in &self.services {
            let Some(p) = s.ports.get("main").or_else(|| s.ports.values().next()) else {
                continue;
            };
            let key = crate::config::env_key(&s.name);
            env.push((format!("STACK_{key}_URL"), p.url.clone()));
            env.push((format!("STACK_{key}_HOST"), "127.0.0.1".to_string()));
            env.push((format!("STACK_{key}_PORT"), p.port.to_string()));
        }
        env
    }
}
