//! `stack validate`, `stack config`, `stack schema`.

use std::process::ExitCode;

use crate::cli::{ConfigArgs, Format, GlobalArgs, SchemaArgs, ValidateArgs};
use crate::config::raw::RawStack;
use crate::error::{Error, Result};
use crate::ui::{Console, errln, out};

pub(crate) fn validate(global: &GlobalArgs, args: ValidateArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    let loaded = super::load::stack(global, args.runtime)?;
    if !global.quiet {
        let n = loaded.stack.services.len();
        errln!(
            console,
            "{} is valid: project `{}`, {n} {}",
            loaded.warnings.file.display(),
            loaded.stack.name,
            if n == 1 { "service" } else { "services" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn config(global: &GlobalArgs, args: ConfigArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    let loaded = super::load::stack(global, args.runtime)?;
    let doc = crate::config::render::document(&loaded.stack, args.show_secrets);
    let text = match args.format {
        Format::Yaml => serde_yaml::to_string(&doc)
            .map_err(|e| Error::input(format!("cannot print the stack: {e}"), None))?,
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&doc)
                .map_err(|e| Error::input(format!("cannot print the stack: {e}"), None))?;
            s.push('\n');
            s
        }
    };
    out!(console, "{text}");
    Ok(ExitCode::SUCCESS)
}

/// The JSON Schema of the stack file.
pub(crate) fn schema_json() -> String {
    let schema = schemars::schema_for!(RawStack);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

pub(crate) fn schema(global: &GlobalArgs, args: SchemaArgs) -> Result<ExitCode> {
    let console = Console::new(global);
    let text = schema_json();
    match args.output {
        Some(path) => std::fs::write(&path, text).map_err(|source| Error::Io {
            action: "cannot write",
            path,
            source,
        })?,
        None => out!(console, "{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
