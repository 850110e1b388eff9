//! The validated stack written back in the stack file's own format, with every default
//! filled in and every variable interpolated: what `stack config` prints. The output is a
//! valid stack file (`stack config > resolved.yaml && stack -f resolved.yaml validate`).

use serde_json::{Map, Value, json};

use super::model::*;
use super::source::FieldPath;

/// What a secret's value is printed as (numbered, so masked keys stay distinct and the
/// document still validates).
const MASK: &str = "******";

fn masked(n: &mut usize) -> Value {
    *n += 1;
    json!(format!("{MASK}{n}"))
}

/// The stack as a stack-file document; with `secrets: false`, the values of key fields
/// (`keys`, `api_key`, `token`, `context_token`) and of variables named like
/// `*KEY*`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*` are [`MASK`]ed.
pub(crate) fn document(stack: &Stack, secrets: bool) -> Value {
    let mut services = Map::new();
    for s in &stack.services {
        let mut v = service(stack, s);
        if !secrets {
            mask_service(&mut v, &mut 0);
        }
        services.insert(s.name.clone(), v);
    }
    json!({"name": stack.name, "services": services})
}

/// Whether an environment variable's name says it holds a secret.
pub(crate) fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["KEY", "TOKEN", "SECRET", "PASSWORD"]
        .iter()
        .any(|w| upper.contains(w))
}

fn mask_service(v: &mut Value, n: &mut usize) {
    if let Some(env) = v.get_mut("env").and_then(Value::as_object_mut) {
        for (k, val) in env.iter_mut() {
            if secret_name(k) {
                *val = masked(n);
            }
        }
    }
    if let Some(config) = v.get_mut("config") {
        mask_config(config, n);
    }
}

/// Masks key fields anywhere in a built-in's configuration.
fn mask_config(v: &mut Value, n: &mut usize) {
    for_each_key_field(v, &FieldPath::root(), &mut |_, val| *val = masked(n));
}

/// Calls `f` with the path (within the configuration) and value of every key field of a
/// built-in's configuration: `api_key`, `token`, `context_token`, `key`, a `db` that is a
/// PostgreSQL URL, and the strings of `keys`, wherever they are.
pub(crate) fn for_each_key_field(
    v: &mut Value,
    at: &FieldPath,
    f: &mut dyn FnMut(&FieldPath, &mut Value),
) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let here = at.key(k.clone());
                match k.as_str() {
                    "api_key" | "token" | "context_token" | "key" if val.is_string() => {
                        f(&here, val);
                    }
                    // A PostgreSQL URL may hold a password.
                    "db" if val.as_str().is_some_and(|d| {
                        d.starts_with("postgres://") || d.starts_with("postgresql://")
                    }) =>
                    {
                        f(&here, val);
                    }
                    "keys" => {
                        for (i, item) in val.as_array_mut().into_iter().flatten().enumerate() {
                            if item.is_string() {
                                f(&here.index(i), item);
                            } else {
                                for_each_key_field(item, &here.index(i), f);
                            }
                        }
                    }
                    _ => for_each_key_field(val, &here, f),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                for_each_key_field(item, &at.index(i), f);
            }
        }
        _ => {}
    }
}

fn service(stack: &Stack, s: &Service) -> Value {
    let mut m = Map::new();
    match &s.kind {
        ServiceKind::Builtin { builtin, config } => {
            m.insert("builtin".into(), json!(builtin.as_str()));
            m.insert("config".into(), config.clone());
        }
        ServiceKind::Command { command, image } => {
            m.insert("command".into(), command_value(command));
            if let Some(i) = image {
                image_fields(&mut m, stack, i);
            }
        }
        ServiceKind::Image { image } => image_fields(&mut m, stack, image),
    }
    m.insert("runtime".into(), json!(s.runtime.as_str()));
    let cwd = s
        .cwd
        .strip_prefix(&stack.dir)
        .map(|p| format!("./{}", p.display()))
        .unwrap_or_else(|_| s.cwd.display().to_string());
    m.insert(
        "cwd".into(),
        json!(if cwd == "./" { "." } else { cwd.as_str() }),
    );
    if !s.ports.is_empty() {
        let ports: Map<String, Value> = s
            .ports
            .iter()
            .map(|p| {
                let v = match (p.host, p.container) {
                    (host, Some(c)) => {
                        json!({"host": host.map_or(json!("auto"), |h| json!(h)), "container": c})
                    }
                    (Some(h), None) => json!(h),
                    (None, None) => json!("auto"),
                };
                (p.name.clone(), v)
            })
            .collect();
        m.insert("ports".into(), Value::Object(ports));
    }
    if !s.env.is_empty() {
        let env: Map<String, Value> = s.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        m.insert("env".into(), Value::Object(env));
    }
    if let Some(h) = &s.health {
        let mut hm = Map::new();
        let (key, probe) = match &h.probe {
            Probe::Http { path, port, status } => {
                let mut p = json!({"path": path, "port": port});
                if let Some(st) = status {
                    p["status"] = json!(st);
                }
                ("http", p)
            }
            Probe::Tcp { port } => ("tcp", json!(port)),
            Probe::Exec { command } => ("exec", command_value(command)),
            Probe::Log { pattern } => ("log", json!(pattern)),
        };
        hm.insert(key.into(), probe);
        hm.insert("interval".into(), json!(duration(h.interval)));
        hm.insert("timeout".into(), json!(duration(h.timeout)));
        hm.insert("retries".into(), json!(h.retries));
        hm.insert("start_period".into(), json!(duration(h.start_period)));
        m.insert("health".into(), Value::Object(hm));
    }
    let restart = match s.restart {
        RestartPolicy::No => "no",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Always => "always",
    };
    m.insert("restart".into(), json!(restart));
    if let Some(n) = s.max_restarts {
        m.insert("max_restarts".into(), json!(n));
    }
    if s.replicas != 1 {
        m.insert("replicas".into(), json!(s.replicas));
    }
    m.insert("stop_timeout".into(), json!(duration(s.stop_timeout)));
    m.insert("stop_signal".into(), json!(s.stop_signal.name()));
    if !s.depends_on.is_empty() {
        let deps: Map<String, Value> = s
            .depends_on
            .iter()
            .map(|d| (d.service.clone(), json!(d.condition.as_str())))
            .collect();
        m.insert("depends_on".into(), Value::Object(deps));
    }
    if !s.profiles.is_empty() {
        m.insert("profiles".into(), json!(s.profiles));
    }
    if s.runtime == RuntimeKind::Container {
        m.insert("init".into(), json!(s.init));
    }
    Value::Object(m)
}

fn image_fields(m: &mut Map<String, Value>, stack: &Stack, image: &Image) {
    match image {
        Image::Reference(r) => {
            m.insert("image".into(), json!(r));
        }
        Image::Build {
            context,
            dockerfile,
        } => {
            let ctx = context
                .strip_prefix(&stack.dir)
                .map(|p| format!("./{}", p.display()))
                .unwrap_or_else(|_| context.display().to_string());
            let mut b = json!({"context": ctx});
            if let Some(d) = dockerfile {
                b["dockerfile"] = json!(d);
            }
            m.insert("build".into(), b);
        }
    }
}

fn command_value(c: &Command) -> Value {
    match c {
        Command::Shell(s) => json!(s),
        Command::Argv(v) => json!(v),
    }
}

fn duration(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}
