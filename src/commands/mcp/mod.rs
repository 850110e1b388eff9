//! `stack mcp` (SPEC §8): an MCP server on stdio through which a coding agent sees and
//! drives the running stack ([`tools`]), and `--config AGENT`, the snippet that registers
//! it and the stack's context server with that agent ([`agents`]).

pub(super) mod agents;
mod tools;

use std::process::ExitCode;

use crate::cli::{GlobalArgs, McpArgs};
use crate::error::{Error, Result};

pub(crate) fn run(global: &GlobalArgs, args: McpArgs) -> Result<ExitCode> {
    let project = super::project::locate(global)?;
    if let Some(agent) = args.config {
        return agents::run(global, &project, agent, args.scope, args.write);
    }
    let server = tools::StackMcp::new(project, global.project_name.clone());
    let rt = super::runtime()?;
    rt.block_on(async {
        use rmcp::ServiceExt;
        let running = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| Error::input(format!("MCP on stdio: {e}"), None))?;
        running
            .waiting()
            .await
            .map_err(|e| Error::input(format!("MCP on stdio: {e}"), None))?;
        Ok(ExitCode::SUCCESS)
    })
}
