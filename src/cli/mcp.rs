//! `stack mcp`.

use clap::{Args, ValueEnum};

/// An MCP server on stdio through which a coding agent sees and drives the running stack;
/// with `--config AGENT`, the snippet that registers it with that agent.
#[derive(Debug, Clone, Args)]
pub(crate) struct McpArgs {
    /// Print the snippet that registers `stack mcp` and the stack's context server with
    /// this agent, instead of serving
    #[arg(long, value_name = "AGENT")]
    pub config: Option<Agent>,
    /// With `--config`: the project's file (`.mcp.json`, `.cursor/mcp.json`,
    /// `.vscode/mcp.json`) or the user's
    #[arg(long, value_enum, default_value_t = Scope::Project, requires = "config")]
    pub scope: Scope,
    /// With `--config`: write the snippet into that file (merged with what it has)
    #[arg(long, requires = "config")]
    pub write: bool,
}

/// The agents `--config` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Agent {
    /// Claude Code (`.mcp.json`; user scope: `~/.claude.json`)
    Claude,
    /// Cursor (`.cursor/mcp.json`; user scope: `~/.cursor/mcp.json`)
    Cursor,
    /// VS Code (`.vscode/mcp.json`; user scope: the user profile's `mcp.json`)
    Vscode,
}

/// Where `--config` registers the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scope {
    /// This project only (a file in the project folder)
    Project,
    /// Every project of this user
    User,
}
