//! `stack export compose|kubernetes`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Translate the stack for docker compose or Kubernetes.
#[derive(Debug, Clone, Args)]
pub(crate) struct ExportArgs {
    /// What to export for
    #[arg(value_enum)]
    pub target: ExportTarget,
    /// Where to write: the compose file (default `docker-compose.yml` beside the stack
    /// file; `-` prints it), or the kustomization's folder (default `k8s/` beside it)
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Kubernetes: the namespace of every object
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Kubernetes: put before the images `stack` builds (`registry.example/team/`)
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub image_prefix: String,
    /// Kubernetes: write the Secret with the keys' values (by default only referenced)
    #[arg(long)]
    pub with_secret_values: bool,
    /// Export the services of this profile too (repeatable)
    #[arg(long = "profile", value_name = "P")]
    pub profiles: Vec<String>,
    /// Do not build the built-in image when the engine lacks it
    #[arg(long)]
    pub no_build: bool,
}

/// The export targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportTarget {
    /// A compose file for docker compose
    Compose,
    /// A kustomization for Kubernetes
    Kubernetes,
}
