//! `stack export compose`: a compose file (the Compose Specification, read by docker
//! compose v2 and docker-compose 1.27+), with the built-ins' configuration files beside it.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{CONFIG_DIR, DATA_DIR, EnvValue, ExportImage, ExportProbe, Exported, ExportedService};
use crate::config::{Condition, RestartPolicy};

/// The folder, beside the compose file, holding the built-ins' configuration files.
pub(crate) const CONFIG_FOLDER: &str = "stack-config";

/// What the export writes: the compose file and, relative to its folder, the built-ins'
/// configuration files.
#[derive(Debug)]
pub(crate) struct ComposeFiles {
    /// The compose file's text.
    pub compose: String,
    /// `(path relative to the compose file's folder, text)`.
    pub configs: Vec<(PathBuf, String)>,
}

/// Renders `x` as a compose file to be written in `out_dir` (build contexts are made
/// relative to it); built-ins run `builtin_image`.
pub(crate) fn render(x: &Exported, out_dir: &Path, builtin_image: &str) -> ComposeFiles {
    let mut services = Map::new();
    let mut volumes = Map::new();
    let mut configs = Vec::new();
    for s in &x.services {
        let mut m = Map::new();
        match &s.image {
            ExportImage::Builtin => {
                m.insert("image".into(), json!(builtin_image));
            }
            ExportImage::Reference(r) => {
                m.insert("image".into(), json!(r));
            }
            ExportImage::Build {
                context,
                dockerfile,
                tag,
            } => {
                let mut b = Map::new();
                b.insert("context".into(), json!(relative(context, out_dir)));
                if let Some(d) = dockerfile {
                    b.insert("dockerfile".into(), json!(d));
                }
                m.insert("build".into(), Value::Object(b));
                m.insert("image".into(), json!(tag));
            }
        }
        if let Some(c) = &s.command {
            m.insert(
                "command".into(),
                json!(c.iter().map(|a| escape(a)).collect::<Vec<_>>()),
            );
        }
        if let Some(text) = &s.config {
            let file = PathBuf::from(CONFIG_FOLDER).join(format!("{}.yaml", s.name));
            let data = format!("{}-data", s.name);
            m.insert("working_dir".into(), json!(DATA_DIR));
            m.insert(
                "volumes".into(),
                json!([
                    format!("./{}:{CONFIG_DIR}/{}.yaml:ro", file.display(), s.name),
                    format!("{data}:{DATA_DIR}"),
                ]),
            );
            volumes.insert(data, json!({}));
            configs.push((file, text.clone()));
        }
        let env: Map<String, Value> = s
            .env
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    EnvValue::Plain(p) => escape(p),
                    EnvValue::Secret(name) => x
                        .secrets
                        .get(name)
                        .map(|s| s.compose.clone())
                        .unwrap_or_default(),
                };
                (k.clone(), Value::String(value))
            })
            .collect();
        m.insert("environment".into(), Value::Object(env));
        if !s.ports.is_empty() {
            let expose: Vec<String> = s.ports.iter().map(|(_, p)| p.to_string()).collect();
            m.insert("expose".into(), json!(expose));
        }
        if let Some((host, container)) = s.published {
            m.insert(
                "ports".into(),
                json!([format!("127.0.0.1:{host}:{container}")]),
            );
        }
        if let Some(h) = healthcheck(s) {
            m.insert("healthcheck".into(), h);
        }
        if !s.depends_on.is_empty() {
            let deps: Map<String, Value> = s
                .depends_on
                .iter()
                .map(|(d, c)| {
                    let condition = match c {
                        Condition::Started => "service_started",
                        Condition::Healthy => "service_healthy",
                        Condition::Completed => "service_completed_successfully",
                    };
                    (d.clone(), json!({"condition": condition}))
                })
                .collect();
            m.insert("depends_on".into(), Value::Object(deps));
        }
        let restart = match (s.restart, s.max_restarts) {
            (RestartPolicy::No, _) => "no".to_string(),
            (RestartPolicy::OnFailure, Some(n)) => format!("on-failure:{n}"),
            (RestartPolicy::OnFailure, None) => "on-failure".to_string(),
            (RestartPolicy::Always, _) => "always".to_string(),
        };
        m.insert("restart".into(), json!(restart));
        m.insert("init".into(), json!(s.init));
        m.insert("stop_signal".into(), json!(s.stop_signal.name()));
        m.insert(
            "stop_grace_period".into(),
            json!(humantime::format_duration(s.stop_timeout).to_string()),
        );
        if s.replicas > 1 {
            m.insert("deploy".into(), json!({"replicas": s.replicas}));
        }
        services.insert(s.name.clone(), Value::Object(m));
    }
    let mut doc = Map::new();
    doc.insert("services".into(), Value::Object(services));
    if !volumes.is_empty() {
        doc.insert("volumes".into(), Value::Object(volumes));
    }
    let body = super::yaml::to_string(&Value::Object(doc));
    ComposeFiles {
        compose: format!("{}{body}", header(x)),
        configs,
    }
}

/// What the file is, how to run it, and what it could not say.
fn header(x: &Exported) -> String {
    let mut h = format!(
        "# The stack `{}`, exported by `stack export compose`. Run it with\n#   docker compose -p {} up -d --wait\n",
        x.project, x.project
    );
    if let Some(g) = x.services.iter().find(|s| s.published.is_some())
        && let Some((host, _)) = g.published
    {
        h.push_str(&format!(
            "# Only `{}` is published, on http://127.0.0.1:{host}.\n",
            g.name
        ));
    }
    if !x.secrets.is_empty() {
        let names: Vec<&str> = x.secrets.keys().map(String::as_str).collect();
        h.push_str(&format!(
            "# Keys come from the environment (or an .env file beside this one): {}.\n",
            names.join(", ")
        ));
    }
    for note in &x.notes {
        h.push_str(&format!("# Note: {note}\n"));
    }
    h
}

/// The health check: `stack __probe` in the built-in image, which has no shell; in other
/// images, `wget` or `curl` (HTTP) and `nc` (TCP) through the image's shell.
fn healthcheck(s: &ExportedService) -> Option<Value> {
    let h = s.health.as_ref()?;
    let builtin = s.image == ExportImage::Builtin;
    let test: Vec<String> = match (&h.probe, builtin) {
        (ExportProbe::Http { path, port }, true) => vec![
            "CMD".into(),
            "/stack".into(),
            "__probe".into(),
            format!("http://127.0.0.1:{port}{path}"),
        ],
        (ExportProbe::Tcp { port }, true) => vec![
            "CMD".into(),
            "/stack".into(),
            "__probe".into(),
            format!("tcp://127.0.0.1:{port}"),
        ],
        (ExportProbe::Http { path, port }, false) => {
            let url = escape(&format!("http://127.0.0.1:{port}{path}"));
            vec![
                "CMD-SHELL".into(),
                format!("wget -q -O /dev/null '{url}' || curl -fsS -o /dev/null '{url}'"),
            ]
        }
        (ExportProbe::Tcp { port }, false) => {
            vec!["CMD-SHELL".into(), format!("nc -z 127.0.0.1 {port}")]
        }
        (ExportProbe::Exec { argv }, _) => std::iter::once("CMD".to_string())
            .chain(argv.iter().map(|a| escape(a)))
            .collect(),
        (ExportProbe::Log { .. }, _) => return None,
    };
    let t = &h.timing;
    let d = |d: std::time::Duration| humantime::format_duration(d).to_string();
    Some(json!({
        "test": test,
        "interval": d(t.interval),
        "timeout": d(t.timeout),
        "retries": t.retries,
        "start_period": d(t.start_period),
    }))
}

/// A value as compose reads it literally: `$` doubled.
fn escape(s: &str) -> String {
    s.replace('$', "$$")
}

/// `path` relative to `base` (`./api`, `../api`); both absolute.
fn relative(path: &Path, base: &Path) -> String {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel = PathBuf::new();
    for _ in common..b.len() {
        rel.push("..");
    }
    for c in &p[common..] {
        rel.push(c);
    }
    match rel.to_str() {
        Some("") => ".".into(),
        Some(r) if r.starts_with("..") => r.to_string(),
        _ => format!("./{}", rel.display()),
    }
}
