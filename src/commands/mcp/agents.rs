//! `stack mcp --config claude|cursor|vscode [--scope project|user] [--write]`: the entries
//! that register `stack mcp` (stdio) and the running stack's context servers (Streamable
//! HTTP) with a coding agent, in the file and shape that agent reads. A context server's
//! token is never written: the entry refers to `$STACK_CONTEXT_TOKEN` (VS Code: prompts
//! for it), so the file can be shared.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use crate::cli::{Agent, GlobalArgs, Scope};
use crate::commands::project::Project;
use crate::control::{self, Message, Request};
use crate::error::{Error, Result};
use crate::ui::{Console, errln, outln};

/// The variable a context server's token is read from.
const TOKEN_VAR: &str = "STACK_CONTEXT_TOKEN";
/// VS Code's input for it.
const TOKEN_INPUT: &str = "stack-context-token";
/// The prefix of every entry this command writes (what `stack doctor` checks).
pub(crate) const ENTRY_PREFIX: &str = "stack";

impl Agent {
    /// The agent's name for the user.
    fn title(self) -> &'static str {
        match self {
            Agent::Claude => "Claude Code",
            Agent::Cursor => "Cursor",
            Agent::Vscode => "VS Code",
        }
    }

    /// The key its file keeps servers under.
    fn servers_key(self) -> &'static str {
        match self {
            Agent::Claude | Agent::Cursor => "mcpServers",
            Agent::Vscode => "servers",
        }
    }

    /// The file it reads for `scope`, for a project in `dir`.
    fn file(self, scope: Scope, dir: &Path) -> Result<PathBuf> {
        if scope == Scope::Project {
            return Ok(match self {
                Agent::Claude => dir.join(".mcp.json"),
                Agent::Cursor => dir.join(".cursor/mcp.json"),
                Agent::Vscode => dir.join(".vscode/mcp.json"),
            });
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                Error::input("`--scope user` needs `HOME`", Some("use `--scope project`"))
            })?;
        Ok(match self {
            Agent::Claude => home.join(".claude.json"),
            Agent::Cursor => home.join(".cursor/mcp.json"),
            Agent::Vscode if cfg!(target_os = "macos") => {
                home.join("Library/Application Support/Code/User/mcp.json")
            }
            Agent::Vscode => std::env::var_os("XDG_CONFIG_HOME")
                .filter(|h| !h.is_empty())
                .map_or_else(|| home.join(".config"), PathBuf::from)
                .join("Code/User/mcp.json"),
        })
    }

    /// The bearer header value that reads the token from where this agent gets secrets.
    fn token_reference(self) -> String {
        match self {
            Agent::Claude => format!("Bearer ${{{TOKEN_VAR}}}"),
            Agent::Cursor => format!("Bearer ${{env:{TOKEN_VAR}}}"),
            Agent::Vscode => format!("Bearer ${{input:{TOKEN_INPUT}}}"),
        }
    }
}

/// A context server of the running stack.
struct ContextServer {
    service: String,
    url: String,
    has_token: bool,
}

pub(crate) fn run(
    global: &GlobalArgs,
    project: &Project,
    agent: Agent,
    scope: Scope,
    write: bool,
) -> Result<ExitCode> {
    let console = Console::new(global);
    let contexts = running_contexts(project);
    let entries = entries(agent, project, global.project_name.as_deref(), &contexts)?;
    let dir = project.file.parent().unwrap_or(Path::new("."));
    let file = agent.file(scope, dir)?;
    let snippet = merged(agent, &Value::Object(Map::new()), &entries);
    if write {
        let existing = read_json(&file)?;
        let text = pretty(&merged(agent, &existing, &entries));
        write_file(&file, &text)?;
        if !global.quiet {
            let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
            errln!(
                console,
                "wrote {} for {} (servers: {})",
                file.display(),
                agent.title(),
                names.join(", ")
            );
        }
    } else {
        outln!(console, "{}", pretty(&snippet).trim_end());
        if !global.quiet {
            errln!(
                console,
                "{} reads this from {} (`--write` merges it in)",
                agent.title(),
                file.display()
            );
        }
    }
    if !global.quiet {
        match contexts {
            None => errln!(
                console,
                "project `{}` is not running, so its context server is not in the snippet: run `stack up -d`, then this again",
                project.name
            ),
            Some(c) if c.iter().any(|c| c.has_token) => errln!(
                console,
                "the context server wants a bearer token; {}",
                match agent {
                    Agent::Vscode => "VS Code asks for it on first use".to_string(),
                    _ => format!(
                        "the entry reads it from `{TOKEN_VAR}`: export it (the `token:` of the service) before starting {}",
                        agent.title()
                    ),
                }
            ),
            Some(_) => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The context servers of the running stack (`None`: it is not running).
fn running_contexts(project: &Project) -> Option<Vec<ContextServer>> {
    let rt = super::super::runtime().ok()?;
    let doc = match rt.block_on(control::client::call(&project.state.socket(), &Request::Ps)) {
        Ok(Message::Ps(doc)) => doc,
        _ => return None,
    };
    Some(
        doc.services
            .iter()
            .filter(|s| s.builtin == Some(crate::config::BuiltinKind::Context))
            .filter_map(|s| {
                let port = s.ports.get("main").or_else(|| s.ports.values().next())?;
                let has_token = crate::commands::project::builtin_config::<
                    crate::services::context::Config,
                >(&project.state, &s.name)
                .is_some_and(|c| c.token.is_some());
                Some(ContextServer {
                    service: s.name.clone(),
                    url: format!("{}/mcp", port.url),
                    has_token,
                })
            })
            .collect(),
    )
}

/// The servers to register, by entry name.
fn entries(
    agent: Agent,
    project: &Project,
    project_name: Option<&str>,
    contexts: &Option<Vec<ContextServer>>,
) -> Result<Vec<(String, Value)>> {
    let exe = std::env::current_exe()?;
    let mut args = vec![
        "mcp".to_string(),
        "-f".into(),
        project.file.display().to_string(),
    ];
    if let Some(p) = project_name {
        args.extend(["-p".to_string(), p.to_string()]);
    }
    // Cursor tells the transport from the keys; the others want `type` (first, as their
    // documentation writes it).
    let entry = |kind: &str, fields: Value| {
        let mut m = Map::new();
        if agent != Agent::Cursor {
            m.insert("type".into(), json!(kind));
        }
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        Value::Object(m)
    };
    let stdio = entry(
        "stdio",
        json!({"command": exe.display().to_string(), "args": args}),
    );
    let mut out = vec![(ENTRY_PREFIX.to_string(), stdio)];
    for c in contexts.iter().flatten() {
        let mut http = entry("http", json!({"url": c.url}));
        if c.has_token {
            http["headers"] = json!({"Authorization": agent.token_reference()});
        }
        out.push((format!("{ENTRY_PREFIX}-{}", c.service), http));
    }
    Ok(out)
}

/// `existing` with `entries` set under the agent's servers key (and VS Code's token input).
fn merged(agent: Agent, existing: &Value, entries: &[(String, Value)]) -> Value {
    let mut doc = existing.as_object().cloned().unwrap_or_default();
    let servers = doc
        .entry(agent.servers_key())
        .or_insert_with(|| Value::Object(Map::new()));
    if !servers.is_object() {
        *servers = Value::Object(Map::new());
    }
    if let Value::Object(servers) = servers {
        for (name, entry) in entries {
            servers.insert(name.clone(), entry.clone());
        }
    }
    let wants_input = entries.iter().any(|(_, e)| {
        e.pointer("/headers/Authorization")
            .and_then(Value::as_str)
            .is_some_and(|v| v.contains(TOKEN_INPUT))
    });
    if agent == Agent::Vscode && wants_input {
        let inputs = doc
            .entry("inputs")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !inputs.is_array() {
            *inputs = Value::Array(Vec::new());
        }
        if let Value::Array(inputs) = inputs
            && !inputs
                .iter()
                .any(|i| i.get("id").and_then(Value::as_str) == Some(TOKEN_INPUT))
        {
            inputs.push(json!({
                "type": "promptString",
                "id": TOKEN_INPUT,
                "description": "The bearer token of the stack's context server (its `token:`)",
                "password": true
            }));
        }
    }
    Value::Object(doc)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// The JSON document in `file`; an empty one when there is none.
fn read_json(file: &Path) -> Result<Value> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(json!({})),
        Err(source) => {
            return Err(Error::Io {
                action: "cannot read",
                path: file.to_path_buf(),
                source,
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        Error::input(
            format!(
                "{}:{}:{}: not JSON: {e}",
                file.display(),
                e.line(),
                e.column()
            ),
            Some("fix the file (or move it aside), then run this again; nothing was written"),
        )
    })?;
    if !v.is_object() {
        return Err(Error::input(
            format!("{}: the document is not a JSON object", file.display()),
            Some("move the file aside, then run this again; nothing was written"),
        ));
    }
    Ok(v)
}

/// Writes `text` to `file` through a temporary file beside it, keeping its permissions.
fn write_file(file: &Path, text: &str) -> Result<()> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    }
    let tmp = file.with_extension("json.stack-tmp");
    std::fs::write(&tmp, text).map_err(io("cannot write", &tmp))?;
    if let Ok(meta) = std::fs::metadata(file) {
        std::fs::set_permissions(&tmp, meta.permissions()).map_err(io("cannot write", &tmp))?;
    }
    std::fs::rename(&tmp, file).map_err(io("cannot write", file))
}

/// An entry of a project's agent file that points at a loopback port.
#[derive(Debug)]
pub(crate) struct Registered {
    /// The file (relative to the project folder).
    pub file: &'static str,
    /// The agent.
    pub agent: Agent,
    /// The entry's name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// The port in it.
    pub port: u16,
}

/// The entries this command wrote (`stack-…`) into the project's agent files, with a
/// loopback URL: what `stack doctor` compares with the ports the stack uses.
pub(crate) fn registered(dir: &Path) -> Vec<Registered> {
    let files = [
        (".mcp.json", Agent::Claude),
        (".cursor/mcp.json", Agent::Cursor),
        (".vscode/mcp.json", Agent::Vscode),
    ];
    let mut out = Vec::new();
    for (file, agent) in files {
        let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
            continue;
        };
        let Ok(doc) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let Some(servers) = doc.get(agent.servers_key()).and_then(Value::as_object) else {
            continue;
        };
        for (name, entry) in servers {
            if !name.starts_with(ENTRY_PREFIX) {
                continue;
            }
            let Some(url) = entry.get("url").and_then(Value::as_str) else {
                continue;
            };
            if let Some(port) = loopback_port(url) {
                out.push(Registered {
                    file,
                    agent,
                    name: name.clone(),
                    url: url.to_string(),
                    port,
                });
            }
        }
    }
    out
}

/// The port of `http://127.0.0.1:PORT/…` (or `localhost`, `[::1]`).
fn loopback_port(url: &str) -> Option<u16> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
        .then(|| port.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_what_the_file_had() {
        let existing = json!({"mcpServers": {"other": {"command": "x"}}, "theme": "dark"});
        let entries = vec![("stack".to_string(), json!({"command": "stack"}))];
        let m = merged(Agent::Claude, &existing, &entries);
        assert_eq!(m["theme"], "dark");
        assert_eq!(m["mcpServers"]["other"]["command"], "x");
        assert_eq!(m["mcpServers"]["stack"]["command"], "stack");
    }

    #[test]
    fn vscode_gets_one_token_input() {
        let entries = vec![(
            "stack-context".to_string(),
            json!({"type": "http", "url": "http://127.0.0.1:1/mcp", "headers": {"Authorization": Agent::Vscode.token_reference()}}),
        )];
        let once = merged(Agent::Vscode, &json!({}), &entries);
        let twice = merged(Agent::Vscode, &once, &entries);
        assert_eq!(twice["inputs"].as_array().map(Vec::len), Some(1));
        assert_eq!(twice["inputs"][0]["password"], true);
    }

    #[test]
    fn loopback_ports() {
        assert_eq!(loopback_port("http://127.0.0.1:4100/mcp"), Some(4100));
        assert_eq!(loopback_port("http://localhost:80"), Some(80));
        assert_eq!(loopback_port("http://[::1]:9/mcp"), Some(9));
        assert_eq!(loopback_port("https://example.com:443/mcp"), None);
    }
}
