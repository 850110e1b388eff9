//! The tools of `stack mcp`. What needs the supervisor asks it over the control socket
//! (`list_services`, the service actions, `stack_env`); `service_logs` reads the log files;
//! `doctor`, `up` and `down` run this binary's own commands (`--json`), so an agent gets
//! exactly what a developer in a shell gets. Every tool has an output schema; read-only
//! ones say so (`readOnlyHint`), destructive ones too (`destructiveHint`). With no stack
//! running, a tool says so and how to start it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{Json, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::commands::control::{Action, Outcome};
use crate::commands::project::Project;
use crate::control::{self, Message, Request};
use crate::events::report::{PsDocument, PsService};
use crate::logs::{self, Line};

/// The most lines `service_logs` returns.
const MAX_LINES: usize = 1000;
/// The most text `service_logs` returns (older lines are cut first).
const MAX_LOG_BYTES: usize = 256 * 1024;
/// How long a restart or start may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The MCP server of one project.
#[derive(Clone)]
pub(super) struct StackMcp {
    project: Arc<Project>,
    /// `-p`, passed on to the commands it runs.
    project_name: Option<String>,
    tool_router: ToolRouter<StackMcp>,
}

impl std::fmt::Debug for StackMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackMcp")
            .field("project", &self.project.name)
            .finish()
    }
}

/// A service as an agent sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct ServiceView {
    /// Its name in the stack file.
    pub name: String,
    /// `process` or `container`.
    pub runtime: String,
    /// `context`, `model` or `gateway` for a built-in service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// created, starting, running, exited, failed or stopped.
    pub state: String,
    /// none (no health check), starting, healthy or unhealthy.
    pub health: String,
    /// The process (group leader) id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The container id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Its URLs by port name (`main` for the only one).
    pub urls: BTreeMap<String, String>,
    /// How often it was restarted.
    pub restarts: u32,
    /// When its current run started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// The exit code of its last run, once it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why its current run started, when not with the stack: `restart requested`,
    /// `start requested`, `restart policy: exited with exit code 1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_reason: Option<String>,
}

impl From<&PsService> for ServiceView {
    fn from(s: &PsService) -> ServiceView {
        ServiceView {
            name: s.name.clone(),
            runtime: text(&s.runtime),
            builtin: s.builtin.as_ref().map(text),
            state: text(&s.state),
            health: text(&s.health),
            pid: s.pid,
            container_id: s.container_id.clone(),
            urls: s
                .ports
                .iter()
                .map(|(n, p)| (n.clone(), p.url.clone()))
                .collect(),
            restarts: s.restarts,
            started_at: s.started_at.map(|t| t.to_string()),
            exit_code: s.exit_code,
            start_reason: s.start_reason.clone(),
        }
    }
}

/// A value as its `ps --json` text (`running`, `process`…).
fn text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// `list_services` (and `up`) output.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Services {
    /// The project.
    pub project: String,
    /// Whether its supervisor runs.
    pub running: bool,
    /// What to do next, when there is something to say (e.g. how to start it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Where model calls go: mock, live, record or replay (a stack with a gateway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<String>,
    /// Every service, in start order.
    pub services: Vec<ServiceView>,
}

impl Services {
    fn of(doc: &PsDocument) -> Services {
        Services {
            project: doc.project.clone(),
            running: true,
            hint: None,
            llm: doc.llm.as_ref().map(text),
            services: doc.services.iter().map(ServiceView::from).collect(),
        }
    }
}

/// `service_logs` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct LogsArgs {
    /// Only this service (omitted: every service, merged by time).
    pub service: Option<String>,
    /// How many of the newest matching lines (default 100, at most 1000).
    #[schemars(range(min = 1, max = 1000))]
    pub lines: Option<u32>,
    /// Only lines since then: a duration back from now (`5m`, `1h30m`) or an RFC 3339 time.
    pub since: Option<String>,
    /// Only lines matching this regular expression (case-insensitive).
    pub grep: Option<String>,
}

/// One log line.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct LogLine {
    /// When it was written (RFC 3339, UTC).
    pub time: String,
    /// The service.
    pub service: String,
    /// `out` or `err` (the service's streams), or `stack` (the orchestrator's notes).
    pub stream: String,
    /// The text.
    pub text: String,
}

/// `service_logs` output.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Logs {
    /// The lines, oldest first.
    pub lines: Vec<LogLine>,
    /// Whether older matching lines were left out.
    pub truncated: bool,
    /// Why lines were left out, and how to get them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The argument of the service actions.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct ServiceArgs {
    /// The service (its name in the stack file; `list_services` shows them).
    pub service: String,
}

/// What a service action did.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Acted {
    /// restarted, started or stopped.
    pub action: String,
    /// The service as it is now.
    pub service: ServiceView,
}

/// `stack_env` output.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct EnvVars {
    /// `STACK_*` endpoints, and what the official OpenAI and Anthropic SDKs read
    /// (`OPENAI_BASE_URL`, `OPENAI_API_KEY`, …) when the stack has a gateway.
    pub variables: BTreeMap<String, String>,
}

/// `doctor` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct DoctorArgs {
    /// Only this service (omitted: every service, the stack file and the Docker engine).
    pub service: Option<String>,
}

/// One finding of `doctor`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(super) struct Finding {
    /// The service it is about (omitted: the stack, the engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// ok, note, warning or error.
    pub level: String,
    /// What was found.
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// `doctor` output.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(super) struct Diagnosis {
    /// The project.
    pub project: String,
    /// How many findings are errors.
    pub errors: usize,
    /// Every finding, the stack's first.
    pub findings: Vec<Finding>,
}

/// `up` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct UpArgs {
    /// Only these services and what they depend on (omitted: all).
    pub services: Option<Vec<String>>,
    /// Where model calls go: `mock`, `live`, `record` or `replay` (omitted: the stack
    /// file's choice, else mock).
    #[schemars(with = "Option<LlmMode>")]
    pub llm: Option<String>,
}

/// `--llm` values (a schema only: the command checks the value).
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum LlmMode {
    Mock,
    Live,
    Record,
    Replay,
}

/// `down` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct DownArgs {
    /// Also delete the volumes and `.stack/data` (the context store, …): data is lost.
    pub volumes: Option<bool>,
}

/// `down` output.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Down {
    /// The project.
    pub project: String,
    /// What `stack down` reported.
    pub report: String,
}

/// `context_sessions` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct SessionsArgs {
    /// One conversation: its newest entries (omitted: every conversation with its counts).
    pub session_id: Option<String>,
    /// How many of its newest entries (default 50, at most 500).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// The context server (omitted: the stack's first one).
    pub service: Option<String>,
}

/// A conversation of a context server.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(super) struct SessionSummary {
    /// Its id.
    pub id: String,
    /// Its entries.
    pub entries: u64,
    /// Their tokens.
    pub tokens: u64,
    /// First write (RFC 3339).
    pub created_at: String,
    /// Last write (RFC 3339).
    pub updated_at: String,
}

/// A stored turn.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(super) struct SessionEntry {
    /// Its id.
    pub id: String,
    /// user, assistant, system or tool.
    pub role: String,
    /// Its text.
    pub content: String,
    /// Its tokens.
    pub tokens: u64,
    /// When it was stored (RFC 3339).
    pub created_at: String,
    /// What it was stored with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One conversation's entries.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(super) struct SessionDetail {
    /// The conversation.
    pub session_id: String,
    /// Its newest entries, oldest first.
    pub entries: Vec<SessionEntry>,
    /// Tokens of every entry it has.
    pub tokens: u64,
}

/// `context_sessions` output.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct ContextSessions {
    /// The context server asked.
    pub service: String,
    /// Every conversation (without `session_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<SessionSummary>>,
    /// The conversation asked for (with `session_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionDetail>,
    /// Whether entries were left out, and how to see more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[tool_router]
impl StackMcp {
    pub(super) fn new(project: Project, project_name: Option<String>) -> StackMcp {
        let mut tool_router = Self::tool_router();
        crate::llm_schema::tighten(&mut tool_router);
        StackMcp {
            project: Arc::new(project),
            project_name,
            tool_router,
        }
    }

    #[tool(
        description = "Every service of the stack: state, health, URLs, pid or container, restarts and why it last (re)started, last exit code. Call it first, and after any change, to see what runs and where.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_services(&self) -> Json<Services> {
        Json(match self.ps().await {
            Ok(doc) => Services::of(&doc),
            Err(_) => Services {
                project: self.project.name.clone(),
                running: false,
                hint: Some(self.not_running()),
                llm: None,
                services: Vec::new(),
            },
        })
    }

    #[tool(
        description = "The newest log lines of one service, or of all merged by time, optionally since a time and filtered by a regular expression. Call it to find out why a service failed or what it did.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn service_logs(
        &self,
        Parameters(a): Parameters<LogsArgs>,
    ) -> Result<Json<Logs>, String> {
        let dir = self.project.state.logs_dir();
        let mut services = crate::logs::services_in(&dir);
        if services.is_empty() {
            return Err(format!(
                "project `{}` has no logs yet: {}",
                self.project.name,
                self.not_running()
            ));
        }
        if let Some(only) = &a.service {
            if !services.contains(only) {
                return Err(format!(
                    "no logs for `{only}`; services with logs: {}",
                    services.join(", ")
                ));
            }
            services.retain(|s| s == only);
        }
        let since = a
            .since
            .as_deref()
            .map(super::super::logs::parse_since)
            .transpose()
            .map_err(|e| e.to_string())?;
        let grep = a
            .grep
            .as_deref()
            .map(|g| {
                regex::RegexBuilder::new(g)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| format!("`grep` is not a regular expression: {e}"))
            })
            .transpose()?;
        let want = a.lines.map_or(100, |n| n as usize).clamp(1, MAX_LINES);
        let state_dir = self.project.state.dir.clone();
        let (lines, more, cut_for_size) = tokio::task::spawn_blocking(move || {
            let mut all: Vec<Line> = Vec::new();
            let mut more = false;
            for s in &services {
                let found = logs::newest(
                    s,
                    &logs::path(&state_dir, s),
                    want,
                    |l| grep.as_ref().is_none_or(|g| g.is_match(&l.text)),
                    |l| since.as_ref().is_some_and(|t| l.time.as_str() < t.as_str()),
                );
                more |= found.more;
                all.extend(found.lines);
            }
            all.sort_by(|a, b| a.time.cmp(&b.time));
            more |= all.len() > want;
            let mut kept: Vec<Line> = all.split_off(all.len().saturating_sub(want));
            // Within the size bound: the newest lines whose text (and ~64 bytes of JSON
            // around each) fits.
            let mut bytes = 0;
            let cut = kept
                .iter()
                .rposition(|l| {
                    bytes += l.text.len() + 64;
                    bytes > MAX_LOG_BYTES
                })
                .map_or(0, |i| i + 1);
            kept.drain(..cut);
            (kept, more || cut > 0, cut)
        })
        .await
        .map_err(|e| format!("reading the logs failed: {e}"))?;
        let note = if cut_for_size > 0 {
            Some(format!(
                "the newest {} matching lines, to keep the answer under {} KiB; older ones are left out: narrow with `since` or `grep`",
                lines.len(),
                MAX_LOG_BYTES / 1024
            ))
        } else if more {
            Some(format!(
                "the newest {} matching lines; older ones are left out: ask for more with `lines` (at most {MAX_LINES}) or narrow with `since` or `grep`",
                lines.len()
            ))
        } else {
            None
        };
        Ok(Json(Logs {
            lines: lines
                .into_iter()
                .map(|l| LogLine {
                    time: l.time,
                    service: l.service,
                    stream: l.stream.tag().to_string(),
                    text: l.text,
                })
                .collect(),
            truncated: more,
            note,
        }))
    }

    #[tool(
        description = "Restart one service and wait until it is healthy again (its pid changes). Call it after changing its code or configuration, or when it hangs.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn restart_service(
        &self,
        Parameters(a): Parameters<ServiceArgs>,
    ) -> Result<Json<Acted>, String> {
        self.act(Action::Restart, a.service).await
    }

    #[tool(
        description = "Stop one service of the running stack (the others keep running). `start_service` brings it back.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn stop_service(
        &self,
        Parameters(a): Parameters<ServiceArgs>,
    ) -> Result<Json<Acted>, String> {
        self.act(Action::Stop, a.service).await
    }

    #[tool(
        description = "Start a stopped service of the running stack and wait until it is healthy.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn start_service(
        &self,
        Parameters(a): Parameters<ServiceArgs>,
    ) -> Result<Json<Acted>, String> {
        self.act(Action::Start, a.service).await
    }

    #[tool(
        description = "The environment an app needs to reach the running stack: STACK_<SERVICE>_URL for every service, and OPENAI_BASE_URL, OPENAI_API_KEY, ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY for the gateway. Call it before running tests or code against the stack.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn stack_env(&self) -> Result<Json<EnvVars>, String> {
        let doc = self.ps().await.map_err(|()| self.not_running())?;
        Ok(Json(EnvVars {
            variables: super::super::run::stack_env(&doc, &self.project.state)
                .into_iter()
                .collect(),
        }))
    }

    #[tool(
        description = "Diagnose \"connection refused\" and failing services: whether each runs, who holds its port, what its health check answers, errors in its log, the Docker engine. Each finding has a level and a fix. Call it when something does not answer.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn doctor(
        &self,
        Parameters(a): Parameters<DoctorArgs>,
    ) -> Result<Json<Diagnosis>, String> {
        let mut args = vec!["doctor".to_string(), "--json".into()];
        args.extend(a.service);
        let out = self.stack(&args, Duration::from_secs(60)).await?;
        serde_json::from_str(&out.stdout).map(Json).map_err(|e| {
            format!(
                "`stack doctor` did not answer in JSON ({e}): {}",
                out.stderr.trim()
            )
        })
    }

    #[tool(
        description = "Start the stack (or some services and what they depend on) in the background and wait until every service is healthy. On a stack that is already up, apply the edited stack file: added services start, removed ones stop, changed ones restart, the rest keep running untouched. Returns the services as `list_services` does.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn up(&self, Parameters(a): Parameters<UpArgs>) -> Result<Json<Services>, String> {
        let mut args = vec!["up".to_string(), "-d".into(), "--json".into()];
        if let Some(llm) = a.llm {
            args.extend(["--llm".to_string(), llm]);
        }
        args.extend(a.services.unwrap_or_default());
        let out = self.stack(&args, Duration::from_secs(600)).await?;
        if !out.success {
            return Err(format!("`stack up` failed:\n{}", tail(&out.stderr, 30)));
        }
        let doc: PsDocument = serde_json::from_str(&out.stdout)
            .map_err(|e| format!("`stack up --json` printed no document ({e})"))?;
        Ok(Json(Services::of(&doc)))
    }

    #[tool(
        description = "Stop every service of the stack and remove its containers and network. With `volumes`, also delete its data (the context store, volumes): ask the user first.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn down(&self, Parameters(a): Parameters<DownArgs>) -> Result<Json<Down>, String> {
        let mut args = vec!["down".to_string()];
        if a.volumes == Some(true) {
            args.push("-v".into());
        }
        let out = self.stack(&args, Duration::from_secs(120)).await?;
        if !out.success {
            return Err(format!("`stack down` failed:\n{}", tail(&out.stderr, 30)));
        }
        Ok(Json(Down {
            project: self.project.name.clone(),
            report: out.stderr.trim().to_string(),
        }))
    }
    #[tool(
        description = "The conversations a context server of the stack remembers (what the gateway prepends to model calls), or one conversation's newest entries. Call it to see what an app or agent stored.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn context_sessions(
        &self,
        Parameters(a): Parameters<SessionsArgs>,
    ) -> Result<Json<ContextSessions>, String> {
        let doc = self.ps().await.map_err(|()| self.not_running())?;
        let contexts: Vec<&PsService> = doc
            .services
            .iter()
            .filter(|s| s.builtin == Some(crate::config::BuiltinKind::Context))
            .collect();
        let svc = match &a.service {
            Some(name) => contexts.iter().find(|s| &s.name == name),
            None => contexts.first(),
        }
        .ok_or_else(|| match &a.service {
            Some(name) => format!(
                "`{name}` is not a context server of this stack; context servers: {}",
                contexts
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "this stack has no context server (`builtin: context`)".to_string(),
        })?;
        let base = svc
            .ports
            .get("main")
            .or_else(|| svc.ports.values().next())
            .map(|p| p.url.clone())
            .ok_or_else(|| format!("`{}` has no port", svc.name))?;
        let token = crate::commands::project::builtin_config::<crate::services::context::Config>(
            &self.project.state,
            &svc.name,
        )
        .and_then(|c| c.token);
        let get = |path: String| {
            let mut r = http_client().get(format!("{base}{path}"));
            if let Some(t) = &token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        let fail = |e: reqwest::Error| format!("`{}` did not answer: {e}", svc.name);
        let mut out = ContextSessions {
            service: svc.name.clone(),
            sessions: None,
            session: None,
            note: None,
        };
        match &a.session_id {
            None => {
                #[derive(Deserialize)]
                struct All {
                    sessions: Vec<SessionSummary>,
                }
                let all: All = get("/v1/sessions".into())
                    .await
                    .map_err(fail)?
                    .error_for_status()
                    .map_err(fail)?
                    .json()
                    .await
                    .map_err(fail)?;
                out.sessions = Some(all.sessions);
            }
            Some(id) => {
                let id_path: String =
                    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
                        .collect();
                let resp = get(format!("/v1/sessions/{id_path}")).await.map_err(fail)?;
                if resp.status() == reqwest::StatusCode::NOT_FOUND {
                    return Err(format!(
                        "`{}` has no conversation `{id}`; call context_sessions without `session_id` to list them",
                        svc.name
                    ));
                }
                let mut detail: SessionDetail = resp
                    .error_for_status()
                    .map_err(fail)?
                    .json()
                    .await
                    .map_err(fail)?;
                let limit = a.limit.map_or(50, |n| n as usize).clamp(1, 500);
                let total = detail.entries.len();
                if total > limit {
                    detail.entries.drain(..total - limit);
                    out.note = Some(format!(
                        "the newest {limit} of {total} entries; ask for more with `limit` (at most 500)"
                    ));
                }
                out.session = Some(detail);
            }
        }
        Ok(Json(out))
    }
}

/// One HTTP client for every call (loopback only: no proxy).
fn http_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default()
    })
}

/// What a command printed.
struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

impl StackMcp {
    fn not_running(&self) -> String {
        format!(
            "project `{}` is not running: start it with the `up` tool (or `stack up -d` in a shell)",
            self.project.name
        )
    }

    async fn ps(&self) -> Result<PsDocument, ()> {
        match control::client::call(&self.project.state.socket(), &Request::Ps).await {
            Ok(Message::Ps(doc)) => Ok(doc),
            _ => Err(()),
        }
    }

    async fn act(&self, action: Action, service: String) -> Result<Json<Acted>, String> {
        let names = [service.clone()];
        let outcome = crate::commands::control::act(&self.project, action, &names, READY_TIMEOUT)
            .await
            .map_err(|e| match e {
                crate::error::Error::Environment { .. } => self.not_running(),
                other => other.to_string(),
            })?;
        let done = match (&outcome, action) {
            (Outcome::Failed(name), _) => {
                return Err(format!(
                    "`{name}` failed; `service_logs` with service `{name}` shows why"
                ));
            }
            (Outcome::TimedOut, _) => {
                return Err(format!(
                    "`{service}` was not ready within {}s; `service_logs` shows what it is doing",
                    READY_TIMEOUT.as_secs()
                ));
            }
            (_, Action::Restart) => "restarted",
            (_, Action::Start) => "started",
            (_, Action::Stop) => "stopped",
        };
        let doc = match outcome {
            Outcome::Ready(doc) => doc,
            _ => self.ps().await.map_err(|()| self.not_running())?,
        };
        let svc = doc
            .services
            .iter()
            .find(|s| s.name == service)
            .ok_or_else(|| format!("no service `{service}` in the running stack"))?;
        Ok(Json(Acted {
            action: done.to_string(),
            service: ServiceView::from(svc),
        }))
    }

    /// Runs `stack -f FILE [-p NAME] ARGS…` (this binary) with no terminal, within `limit`.
    async fn stack(&self, args: &[String], limit: Duration) -> Result<Ran, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find `stack`: {e}"))?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("--no-color")
            .arg("-f")
            .arg(&self.project.file)
            .args(self.project_name.iter().flat_map(|p| ["-p", p.as_str()]))
            .args(args)
            .current_dir(
                self.project
                    .file
                    .parent()
                    .map(PathBuf::from)
                    .unwrap_or_default(),
            )
            // Never the MCP channel: stdin and stdout are the agent's JSON-RPC.
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(limit, cmd.output())
            .await
            .map_err(|_| {
                format!(
                    "`stack {}` did not finish within {}s",
                    args.join(" "),
                    limit.as_secs()
                )
            })?
            .map_err(|e| format!("cannot run `stack {}`: {e}", args.join(" ")))?;
        Ok(Ran {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for StackMcp {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions(format!(
                "Operates the local `stack` of project `{}` (its services, their logs and health). \
                 Start with list_services; use service_logs and doctor to find out why something \
                 fails; restart_service after changing a service's code; stack_env for the URLs \
                 and keys an app or test needs.",
                self.project.name
            ));
        info.server_info = rmcp::model::Implementation::new("stack", env!("CARGO_PKG_VERSION"));
        info
    }
}
