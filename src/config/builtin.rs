//! The built-in service kinds: stack-file vocabulary (`builtin: context|model|gateway`).

/// The built-in service kinds.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BuiltinKind {
    /// The MCP context server (SPEC §4.1)
    Context,
    /// The mock model server (SPEC §4.2)
    Model,
    /// The AI gateway (SPEC §4.3)
    Gateway,
}

impl BuiltinKind {
    /// The name used on the command line and in the stack file.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BuiltinKind::Context => "context",
            BuiltinKind::Model => "model",
            BuiltinKind::Gateway => "gateway",
        }
    }
}

impl std::fmt::Display for BuiltinKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
