//! `stack export kubernetes`: a kustomization. Per service a Deployment (a Job when
//! something waits for it to complete), a Service for its ports and, for a built-in, a
//! ConfigMap with its configuration; keys from one Secret (`<project>-secrets`), written
//! only with `--with-secret-values`.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{
    CONFIG_DIR, DATA_DIR, EnvValue, ExportError, ExportImage, ExportProbe, Exported,
    ExportedService,
};
use crate::config::{Condition, RestartPolicy, StopSignal};

/// How the Kubernetes export is asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--image-prefix` (`registry.example/team/`): before the images `stack` builds.
    pub image_prefix: String,
    /// `--with-secret-values`: write the Secret with the keys' values.
    pub with_secret_values: bool,
}

/// Renders `x`: `(file name, text)` pairs, the kustomization first.
pub(crate) fn render(
    x: &Exported,
    opts: &Options,
    builtin_image: &str,
) -> Result<Vec<(String, String)>, ExportError> {
    let mut files = Vec::new();
    let mut resources = Vec::new();
    // Object names are DNS names: a project's `_` becomes `-`.
    let prefix = x.project.replace('_', "-");
    let secret_name = format!("{prefix}-secrets");
    let endpoints_name = format!("{prefix}-endpoints");
    let shared = shared_env(x);
    if !shared.is_empty() {
        let data: Map<String, Value> = shared
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
            .collect();
        let mut map = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": endpoints_name, "labels": {"app.kubernetes.io/part-of": x.project}},
        });
        map["data"] = Value::Object(data);
        resources.push("endpoints.yaml".to_string());
        files.push(("endpoints.yaml".to_string(), super::yaml::to_string(&map)));
    }
    for s in &x.services {
        check_name(&s.name)?;
        let cx = Cx {
            x,
            opts,
            builtin_image,
            secret_name: &secret_name,
            endpoints: (!shared.is_empty()).then_some((endpoints_name.as_str(), &shared)),
        };
        let docs = cx.service_documents(s);
        let text = docs
            .iter()
            .map(super::yaml::to_string)
            .collect::<Vec<_>>()
            .join("---\n");
        let file = format!("{}.yaml", s.name);
        resources.push(file.clone());
        files.push((file, text));
    }
    if opts.with_secret_values && !x.secrets.is_empty() {
        let data: Map<String, Value> = x
            .secrets
            .iter()
            .map(|(k, s)| (k.clone(), json!(s.value)))
            .collect();
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "labels": {"app.kubernetes.io/part-of": x.project}},
            "type": "Opaque",
            "stringData": data,
        });
        resources.push("secret.yaml".into());
        files.push(("secret.yaml".into(), super::yaml::to_string(&secret)));
    }
    let mut k = Map::new();
    k.insert(
        "apiVersion".into(),
        json!("kustomize.config.k8s.io/v1beta1"),
    );
    k.insert("kind".into(), json!("Kustomization"));
    if let Some(ns) = &opts.namespace {
        k.insert("namespace".into(), json!(ns));
    }
    k.insert("resources".into(), json!(resources));
    let body = super::yaml::to_string(&Value::Object(k));
    files.insert(
        0,
        (
            "kustomization.yaml".into(),
            header(x, opts, &secret_name) + &body,
        ),
    );
    Ok(files)
}

/// How to apply it, what to create first, what could not be said.
fn header(x: &Exported, opts: &Options, secret: &str) -> String {
    let mut h = format!(
        "# The stack `{}`, exported by `stack export kubernetes`. Apply it with\n#   kubectl apply -k .\n",
        x.project
    );
    if !x.secrets.is_empty() && !opts.with_secret_values {
        let literals: Vec<String> = x
            .secrets
            .keys()
            .map(|k| format!("--from-literal={k}=\"${k}\""))
            .collect();
        h.push_str(&format!(
            "# The keys come from the Secret `{secret}`; create it first:\n#   kubectl create secret generic {secret} {}\n",
            literals.join(" ")
        ));
    }
    if let Some(g) = x.services.iter().find(|s| s.published.is_some())
        && let Some((host, container)) = g.published
    {
        h.push_str(&format!(
            "# Reach `{}` from this machine with\n#   kubectl port-forward service/{} {host}:{container}\n",
            g.name, g.name
        ));
    }
    for note in &x.notes {
        h.push_str(&format!("# Note: {note}\n"));
    }
    for s in x
        .services
        .iter()
        .filter(|s| s.stop_signal != StopSignal::TERM)
    {
        h.push_str(&format!(
            "# Note: {}: Kubernetes stops containers with SIGTERM, not its stop_signal {}\n",
            s.name,
            s.stop_signal.name()
        ));
    }
    h
}

struct Cx<'a> {
    x: &'a Exported,
    opts: &'a Options,
    builtin_image: &'a str,
    secret_name: &'a str,
    /// The ConfigMap every container reads the shared variables from, and those.
    endpoints: Option<(&'a str, &'a Shared<'a>)>,
}

/// Variables every service has with the same value.
type Shared<'a> = std::collections::BTreeMap<&'a str, &'a str>;

/// The injected variables (`STACK_PROJECT`, `STACK_<X>_URL|HOST|PORT`) that every service
/// has with the same value: on the cluster's network every service sees the others alike,
/// so they are one ConfigMap (`envFrom`) instead of a copy in each container.
fn shared_env(x: &Exported) -> Shared<'_> {
    let Some(first) = x.services.first() else {
        return Shared::new();
    };
    let mut shared: Shared<'_> = first
        .env
        .iter()
        .filter_map(|(k, v)| match v {
            EnvValue::Plain(p) if k.starts_with("STACK_") && k != "STACK_SERVICE" => {
                Some((k.as_str(), p.as_str()))
            }
            _ => None,
        })
        .collect();
    for s in &x.services[1..] {
        let same: std::collections::HashSet<&str> = s
            .env
            .iter()
            .filter_map(|(k, v)| match v {
                EnvValue::Plain(p) if shared.get(k.as_str()) == Some(&p.as_str()) => {
                    Some(k.as_str())
                }
                _ => None,
            })
            .collect();
        shared.retain(|k, _| same.contains(k));
    }
    shared
}

impl Cx<'_> {
    fn labels(&self, s: &ExportedService) -> Value {
        json!({
            "app.kubernetes.io/name": s.name,
            "app.kubernetes.io/part-of": self.x.project,
        })
    }

    fn metadata(&self, name: &str, s: &ExportedService) -> Value {
        let mut labels = self.labels(s);
        labels["app.kubernetes.io/managed-by"] = json!("stack");
        json!({"name": name, "labels": labels})
    }

    fn image(&self, s: &ExportedService) -> String {
        let prefix = &self.opts.image_prefix;
        match &s.image {
            ExportImage::Builtin => format!("{prefix}{}", self.builtin_image),
            ExportImage::Reference(r) => r.clone(),
            ExportImage::Build { tag, .. } => format!("{prefix}{tag}"),
        }
    }

    fn service_documents(&self, s: &ExportedService) -> Vec<Value> {
        let mut docs = Vec::new();
        if let Some(config) = &s.config {
            docs.push(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": self.metadata(&format!("{}-config", s.name), s),
                "data": {format!("{}.yaml", s.name): config},
            }));
        }
        if !s.ports.is_empty() {
            let ports: Vec<Value> = named_ports(s)
                .map(|(name, port)| {
                    json!({"name": name, "port": port, "targetPort": port, "protocol": "TCP"})
                })
                .collect();
            docs.push(json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": self.metadata(&s.name, s),
                "spec": {"selector": self.labels(s), "ports": ports},
            }));
        }
        docs.push(self.workload(s));
        docs
    }

    /// The Deployment (or Job) running `s`.
    fn workload(&self, s: &ExportedService) -> Value {
        let mut pod = Map::new();
        let inits: Vec<Value> = s
            .depends_on
            .iter()
            .filter(|(_, c)| *c == Condition::Healthy)
            .filter_map(|(dep, _)| {
                let target = self.x.services.iter().find(|t| &t.name == dep)?;
                Some(json!({
                    "name": format!("wait-for-{dep}"),
                    "image": format!("{}{}", self.opts.image_prefix, self.builtin_image),
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["__probe", "--wait", target.readiness_url()?],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }))
            })
            .collect();
        if !inits.is_empty() {
            pod.insert("initContainers".into(), Value::Array(inits));
        }
        pod.insert("containers".into(), Value::Array(vec![self.container(s)]));
        let mut volumes = Vec::new();
        if s.config.is_some() {
            volumes.push(
                json!({"name": "config", "configMap": {"name": format!("{}-config", s.name)}}),
            );
            volumes.push(json!({"name": "data", "emptyDir": {}}));
        }
        if !volumes.is_empty() {
            pod.insert("volumes".into(), Value::Array(volumes));
        }
        pod.insert(
            "terminationGracePeriodSeconds".into(),
            json!(s.stop_timeout.as_secs()),
        );
        if s.one_shot {
            pod.insert(
                "restartPolicy".into(),
                json!(if s.restart == RestartPolicy::No {
                    "Never"
                } else {
                    "OnFailure"
                }),
            );
            let mut job = json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": self.metadata(&s.name, s),
                "spec": {
                    "backoffLimit": s.max_restarts.unwrap_or(if s.restart == RestartPolicy::No { 0 } else { 6 }),
                    "template": {"metadata": {"labels": self.labels(s)}, "spec": null},
                },
            });
            // Moved in, not through `json!` (which would copy it).
            job["spec"]["template"]["spec"] = Value::Object(pod);
            return job;
        }
        let mut deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.metadata(&s.name, s),
            "spec": {
                "replicas": s.replicas,
                "selector": {"matchLabels": self.labels(s)},
                "template": {"metadata": {"labels": self.labels(s)}, "spec": null},
            },
        });
        deployment["spec"]["template"]["spec"] = Value::Object(pod);
        deployment
    }

    fn container(&self, s: &ExportedService) -> Value {
        let mut c = Map::new();
        c.insert("name".into(), json!(s.name));
        c.insert("image".into(), json!(self.image(s)));
        c.insert("imagePullPolicy".into(), json!("IfNotPresent"));
        if let Some(args) = &s.command {
            // `args`, like a compose `command`: the image's entrypoint stays.
            c.insert("args".into(), json!(args));
        }
        if s.config.is_some() {
            c.insert("workingDir".into(), json!(DATA_DIR));
        }
        if let Some((name, _)) = self.endpoints {
            c.insert("envFrom".into(), json!([{"configMapRef": {"name": name}}]));
        }
        let shared = |k: &str, v: &EnvValue| {
            self.endpoints.is_some_and(
                |(_, vars)| matches!(v, EnvValue::Plain(p) if vars.get(k) == Some(&p.as_str())),
            )
        };
        let env: Vec<Value> = s
            .env
            .iter()
            .filter(|(k, v)| !shared(k, v))
            .map(|(k, v)| match v {
                EnvValue::Plain(p) => json!({"name": k, "value": p}),
                EnvValue::Secret(name) => json!({
                    "name": k,
                    "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": name}},
                }),
            })
            .collect();
        c.insert("env".into(), Value::Array(env));
        if !s.ports.is_empty() {
            let ports: Vec<Value> = named_ports(s)
                .map(|(name, port)| json!({"name": name, "containerPort": port, "protocol": "TCP"}))
                .collect();
            c.insert("ports".into(), Value::Array(ports));
        }
        if let Some(h) = &s.health
            && let Some(handler) = handler(&h.probe)
        {
            let t = &h.timing;
            let period = seconds(t.interval);
            let timeout = seconds(t.timeout);
            let budget = t.startup_budget().as_secs().div_ceil(period).max(1);
            let probe = |failures: u64| {
                let mut p = handler.clone();
                p["periodSeconds"] = json!(period);
                p["timeoutSeconds"] = json!(timeout);
                p["failureThreshold"] = json!(failures);
                p
            };
            c.insert("startupProbe".into(), probe(budget));
            c.insert("readinessProbe".into(), probe(3));
            c.insert("livenessProbe".into(), probe(u64::from(t.retries.max(1))));
        }
        let builtin = s.image == ExportImage::Builtin;
        c.insert(
            "resources".into(),
            if builtin {
                json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}})
            } else {
                json!({"requests": {"cpu": "100m", "memory": "128Mi"}})
            },
        );
        if s.config.is_some() {
            c.insert(
                "volumeMounts".into(),
                json!([
                    {"name": "config", "mountPath": format!("{CONFIG_DIR}/{}.yaml", s.name), "subPath": format!("{}.yaml", s.name), "readOnly": true},
                    {"name": "data", "mountPath": DATA_DIR},
                ]),
            );
        }
        Value::Object(c)
    }
}

/// The probe handler (`httpGet`, `tcpSocket`, `exec`) of a health check; none for a log
/// line.
fn handler(probe: &ExportProbe) -> Option<Value> {
    Some(match probe {
        ExportProbe::Http { path, port } => json!({"httpGet": {"path": path, "port": port}}),
        ExportProbe::Tcp { port } => json!({"tcpSocket": {"port": port}}),
        ExportProbe::Exec { argv } => json!({"exec": {"command": argv}}),
        ExportProbe::Log { .. } => return None,
    })
}

/// Whole seconds, at least 1 (Kubernetes' probe fields).
fn seconds(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// The service's ports with names Kubernetes accepts.
fn named_ports(s: &ExportedService) -> impl Iterator<Item = (String, u16)> + '_ {
    s.ports
        .iter()
        .enumerate()
        .map(|(i, (name, port))| (port_name(name, i), *port))
}

/// A port name Kubernetes accepts (an IANA service name: at most 15 lowercase letters,
/// digits and inner `-`, with a letter), else `port-N`.
fn port_name(name: &str, index: usize) -> String {
    let n: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let ok = !n.is_empty()
        && n.len() <= 15
        && n.chars().any(|c| c.is_ascii_lowercase())
        && !n.starts_with('-')
        && !n.ends_with('-')
        && !n.contains("--");
    if ok { n } else { format!("port-{index}") }
}

/// A service name must be a DNS label: it names the Service other services reach.
fn check_name(name: &str) -> Result<(), ExportError> {
    let ok = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ExportError::Name {
            service: name.to_string(),
            message: format!(
                "`{name}` cannot name a Kubernetes Service (a DNS label: lowercase letters, digits and `-`, starting with a letter, at most 63)"
            ),
        })
    }
}
