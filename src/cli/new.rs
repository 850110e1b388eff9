//! `stack new`.

use std::path::PathBuf;

use clap::Args;

/// Start a project from a built-in template.
#[derive(Debug, Clone, Args)]
pub(crate) struct NewArgs {
    /// The template (see `--list`)
    #[arg(required_unless_present = "list", value_name = "TEMPLATE")]
    pub template: Option<String>,
    /// Where to create it [default: a new folder named after the template]
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// List the templates
    #[arg(long)]
    pub list: bool,
    /// Overwrite files that already exist
    #[arg(long)]
    pub force: bool,
}
