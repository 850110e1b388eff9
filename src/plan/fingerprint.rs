//! What defines a resolved service, field by field, as digests: `stack up` on a running
//! project compares them to decide what to restart (SPEC §3.1), and names the fields that
//! differ (`env.LOG_LEVEL`, `config.keys`). Only digests are kept, never values: an env
//! value or a gateway key is a secret.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::resolve::{ContainerImage, Launch, ServicePlan};

/// Field → digest of its resolved value.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Fingerprint(BTreeMap<String, String>);

impl Fingerprint {
    /// The fingerprint of `plan`. `own_env` names the variables the service declares (the
    /// injected `STACK_<OTHER>_*` do not define it: adding a service to the stack must not
    /// restart the others); `config` is a built-in's configuration as written.
    pub(crate) fn of(plan: &ServicePlan, own_env: &[&str], config: Option<&str>) -> Fingerprint {
        let mut f = Fingerprint::default();
        f.add("runtime", &plan.runtime);
        match &plan.launch {
            Launch::Process { argv } => f.add("command", argv),
            Launch::Container { image, command } => {
                f.add("command", command);
                match image {
                    ContainerImage::Build {
                        context,
                        dockerfile,
                    } => {
                        // The Dockerfile is part of what the image is; the rest of the
                        // context is `watch: rebuild`'s to follow.
                        let file = context.join(dockerfile.as_deref().unwrap_or("Dockerfile"));
                        let text = std::fs::read(&file).unwrap_or_default();
                        f.add("image", &(context, dockerfile, digest(&text)));
                    }
                    other => f.add("image", other),
                }
            }
        }
        for (k, v) in &plan.env {
            if own_env.contains(&k.as_str()) || matches!(k.as_str(), "PORT" | "STACK_SERVICE") {
                f.add(&format!("env.{k}"), v);
            }
        }
        f.add("cwd", &plan.cwd);
        f.add("ports", &plan.ports);
        f.add("health", &plan.health);
        f.add("restart", &plan.restart);
        f.add("max_restarts", &plan.max_restarts);
        f.add("stop_timeout", &plan.stop_timeout);
        f.add("stop_signal", &plan.stop_signal.name());
        f.add("depends_on", &plan.depends_on);
        f.add("init", &plan.init);
        if let Some(text) = config {
            match serde_yaml::from_str::<BTreeMap<String, serde_yaml::Value>>(text) {
                Ok(map) => {
                    for (k, v) in &map {
                        f.add(&format!("config.{k}"), v);
                    }
                }
                Err(_) => f.add("config", &text),
            }
        }
        f
    }

    fn add(&mut self, field: &str, value: &impl Serialize) {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.0.insert(field.to_string(), digest(&bytes));
    }

    /// The fields whose value differs between `self` and `new` (set in only one counts).
    pub(crate) fn changes(&self, new: &Fingerprint) -> Vec<String> {
        let mut fields: Vec<String> = self
            .0
            .iter()
            .filter(|(k, v)| new.0.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .chain(new.0.keys().filter(|k| !self.0.contains_key(*k)).cloned())
            .collect();
        fields.sort();
        fields
    }
}

fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(pairs: &[(&str, &str)]) -> Fingerprint {
        let mut f = Fingerprint::default();
        for (k, v) in pairs {
            f.add(k, v);
        }
        f
    }

    #[test]
    fn changes_name_changed_added_and_removed_fields() {
        let old = fp(&[("env.A", "1"), ("env.B", "2"), ("cwd", "/x")]);
        let new = fp(&[("env.A", "1"), ("env.C", "3"), ("cwd", "/y")]);
        assert_eq!(old.changes(&new), ["cwd", "env.B", "env.C"]);
        assert!(old.changes(&old.clone()).is_empty());
    }
}
