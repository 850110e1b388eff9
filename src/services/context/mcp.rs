//! The MCP face (rmcp, Streamable HTTP at `/mcp`): six tools with input schemas and
//! structured output, the resources `context://sessions` and
//! `context://sessions/{session_id}`, and the prompt `summarize_session`. Input errors come
//! back as tool results with `isError`; unknown tools are protocol errors (rmcp); a missing
//! resource is an error carrying `data.uri`.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, CompletionInfo, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, PaginatedRequestParams, Prompt, PromptArgument, PromptMessage,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Reference, Resource,
    ResourceContents, ResourceTemplate, Role, ServerCapabilities, ServerConfig,
    SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Json, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Ctx;
use super::ops;
use super::retrieve::Context;
use super::store::{Pruned, SessionInfo, Stored};

/// The MCP server (one per rmcp session; they share the store).
#[derive(Clone)]
pub(super) struct ContextMcp {
    ctx: Arc<Ctx>,
    tool_router: ToolRouter<ContextMcp>,
}

impl std::fmt::Debug for ContextMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContextMcp")
    }
}

/// A conversation turn's author.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // a schema only: the server reads `role` as text and says what is wrong
pub(super) enum TurnRole {
    User,
    Assistant,
    System,
    Tool,
}

/// What `metadata` may carry (any other key is kept too, but clients are told of these).
#[derive(Debug, JsonSchema)]
#[allow(dead_code)] // a schema only: metadata is stored as given
pub(super) struct Metadata {
    /// Where the turn came from: an app, a channel, a file.
    pub source: Option<String>,
    /// Labels to group turns by.
    pub tags: Option<Vec<String>>,
    /// The model that wrote an `assistant` turn.
    pub model: Option<String>,
    /// The tool whose result a `tool` turn is.
    pub tool_name: Option<String>,
    /// The turn's number as the app counts them.
    pub turn: Option<u32>,
}

/// `store_context` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct StoreArgs {
    /// The conversation this turn belongs to (created on first use): 1 to 128 letters,
    /// digits, `-`, `_`, `.`, `:` or `@`.
    pub session_id: String,
    /// Who said it: `user` (the person), `assistant` (the model), `system` (instructions
    /// to the model) or `tool` (a tool's result).
    #[schemars(with = "TurnRole")]
    pub role: String,
    /// The text of the turn.
    pub content: String,
    /// Facts about the turn, kept with it and returned by `retrieve_context`.
    #[schemars(with = "Option<Metadata>")]
    pub metadata: Option<Value>,
}

/// `retrieve_context` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct RetrieveArgs {
    /// The conversation.
    pub session_id: String,
    /// What the next turn is about (usually the user's new message): older entries
    /// relevant to it are favoured (BM25). Empty: only recency counts.
    pub query: Option<String>,
    /// The token budget of the context; omitted: the server's `default_max_tokens`.
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u32>,
}

/// `update_context` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct UpdateArgs {
    /// The conversation.
    pub session_id: String,
    /// The entry to change (an `id` from `store_context` or `retrieve_context`).
    pub entry_id: String,
    /// Its new text.
    pub content: String,
}

/// `prune_context` arguments: `max_tokens`, `keep_last`, or both (the stricter wins).
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct PruneArgs {
    /// The conversation.
    pub session_id: String,
    /// Keep the newest entries that fit in this many tokens.
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u64>,
    /// Keep this many of the newest entries.
    #[schemars(range(min = 1))]
    pub keep_last: Option<usize>,
}

/// `delete_session` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct SessionArgs {
    /// The conversation.
    pub session_id: String,
}

/// `list_sessions` output.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Sessions {
    /// Every session with entries.
    pub sessions: Vec<SessionInfo>,
}

/// `delete_session` output.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Deleted {
    /// The session.
    pub session_id: String,
    /// Always true.
    pub deleted: bool,
    /// How many entries it had.
    pub entries_removed: usize,
}

#[tool_router]
impl ContextMcp {
    /// A server over `ctx`.
    pub(super) fn new(ctx: Arc<Ctx>) -> ContextMcp {
        static TOOLS: std::sync::LazyLock<ToolRouter<ContextMcp>> =
            std::sync::LazyLock::new(|| {
                let mut tools = ContextMcp::tool_router();
                crate::llm_schema::tighten(&mut tools);
                tools
            });
        ContextMcp {
            ctx,
            tool_router: TOOLS.clone(),
        }
    }

    #[tool(
        description = "Store one turn of a conversation. Call it after every user message and every answer, so later turns can recall it; the turn is durable when the call returns.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn store_context(
        &self,
        Parameters(a): Parameters<StoreArgs>,
    ) -> Result<Json<Stored>, String> {
        ops::store(&self.ctx, a.session_id, a.role, a.content, a.metadata)
            .await
            .map(Json)
            .map_err(|e| e.to_string())
    }

    #[tool(
        description = "The best context of a conversation within a token budget: the newest turns, then older entries relevant to `query`, then a summary of what was left out. Call it before answering, with the user's message as `query`. An unknown session has an empty context.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn retrieve_context(
        &self,
        Parameters(a): Parameters<RetrieveArgs>,
    ) -> Result<Json<Context>, String> {
        let query = a.query.as_deref().filter(|q| !q.trim().is_empty());
        ops::retrieve(&self.ctx, &a.session_id, query, a.max_tokens)
            .await
            .map(Json)
            .map_err(|e| e.to_string())
    }

    #[tool(
        description = "Replace the text of one stored turn, e.g. to correct it or to redact something the user asked to forget.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn update_context(
        &self,
        Parameters(a): Parameters<UpdateArgs>,
    ) -> Result<Json<Stored>, String> {
        ops::update(&self.ctx, a.session_id, a.entry_id, a.content)
            .await
            .map(Json)
            .map_err(|e| e.to_string())
    }

    #[tool(
        description = "Delete the oldest turns of a conversation for good: keep the newest that fit in `max_tokens`, or the last `keep_last`. Call it when a session has grown past what is worth keeping; `retrieve_context` already fits any budget without it.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn prune_context(
        &self,
        Parameters(a): Parameters<PruneArgs>,
    ) -> Result<Json<Pruned>, String> {
        // A strict-mode client must send both fields: a 0 would empty the session.
        if a.max_tokens == Some(0) || a.keep_last == Some(0) {
            return Err(
                "`max_tokens` and `keep_last` must be at least 1 (delete_session removes a whole conversation)"
                    .into(),
            );
        }
        ops::prune(&self.ctx, a.session_id, a.max_tokens, a.keep_last)
            .await
            .map(Json)
            .map_err(|e| e.to_string())
    }

    #[tool(
        description = "Every conversation stored, with its entry and token counts. Call it to find a session id.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_sessions(&self) -> Result<Json<Sessions>, String> {
        let sessions = ops::list(&self.ctx).await.map_err(|e| e.to_string())?;
        Ok(Json(Sessions { sessions }))
    }

    #[tool(
        description = "Delete a conversation and every turn in it, for good. Call it only when the user asks to forget a conversation.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn delete_session(
        &self,
        Parameters(a): Parameters<SessionArgs>,
    ) -> Result<Json<Deleted>, String> {
        let id = a.session_id.clone();
        ops::delete(&self.ctx, a.session_id)
            .await
            .map(|n| {
                Json(Deleted {
                    session_id: id,
                    deleted: true,
                    entries_removed: n,
                })
            })
            .map_err(|e| e.to_string())
    }
}

const SESSIONS_URI: &str = "context://sessions";
const SESSION_PREFIX: &str = "context://sessions/";

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ContextMcp {
    #[allow(deprecated)] // `enable_logging`: see `set_level`.
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .build(),
        )
        .with_instructions(
            "Conversation memory. Store each turn with store_context; before answering, call \
             retrieve_context with the user's question as `query` and a token budget.",
        );
        info.server_info =
            rmcp::model::Implementation::new("stack-context", env!("CARGO_PKG_VERSION"));
        info
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let mut all = vec![
            Resource::new(SESSIONS_URI, "sessions")
                .with_description("Every session with its entry and token counts")
                .with_mime_type("application/json"),
        ];
        let sessions = ops::list(&self.ctx)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        for s in sessions {
            all.push(
                Resource::new(
                    format!("{SESSION_PREFIX}{}", s.id),
                    format!("session {}", s.id),
                )
                .with_description(format!("{} entries, {} tokens", s.entries, s.tokens))
                .with_mime_type("application/json"),
            );
        }
        Ok(ListResourcesResult::with_all_items(all))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("context://sessions/{session_id}", "session")
                .with_description("The context of one session (default budget)")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let text = if uri == SESSIONS_URI {
            let sessions = ops::list(&self.ctx)
                .await
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            json!({"sessions": sessions}).to_string()
        } else if let Some(id) = uri.strip_prefix(SESSION_PREFIX) {
            match ops::retrieve_existing(&self.ctx, id).await {
                Ok(c) => serde_json::to_string(&c).unwrap_or_default(),
                Err(e) => return Err(not_found(&uri, &e.to_string())),
            }
        } else {
            return Err(not_found(&uri, "no such resource"));
        };
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri).with_mime_type("application/json"),
        ])
        .into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let uri = request.uri;
        if uri != SESSIONS_URI && !uri.starts_with(SESSION_PREFIX) {
            return Err(not_found(
                &uri,
                "only context://sessions and context://sessions/{id} can be watched",
            ));
        }
        let session = mcp_session(&context).ok_or_else(|| {
            ErrorData::invalid_request(
                "resources/subscribe needs a 2025-11-25 session (Mcp-Session-Id); 2026-07-28 clients use subscriptions/listen",
                None,
            )
        })?;
        self.ctx.subscribers.add(uri, session, context.peer);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if let Some(session) = mcp_session(&context) {
            self.ctx.subscribers.remove(&request.uri, &session);
        }
        Ok(())
    }

    // `logging/setLevel` is deprecated by SEP-2577 (2026-07-28) but part of the
    // 2025-11-25 protocol this server still speaks: accepted, as clients of that era expect.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        tracing::debug!(level = ?request.level, "MCP client set the log level");
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let wants_session = request.argument.name == "session_id"
            && match &request.r#ref {
                Reference::Resource(r) => r.uri == "context://sessions/{session_id}",
                Reference::Prompt(p) => p.name == "summarize_session",
                _ => false,
            };
        let values: Vec<String> = if wants_session {
            ops::list(&self.ctx)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.id)
                .filter(|id| id.starts_with(&request.argument.value))
                .collect()
        } else {
            Vec::new()
        };
        let total = values.len();
        let shown: Vec<String> = values
            .into_iter()
            .take(CompletionInfo::MAX_VALUES)
            .collect();
        let info = CompletionInfo::with_pagination(
            shown,
            Some(total as u32),
            total > CompletionInfo::MAX_VALUES,
        )
        .map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(CompleteResult::new(info))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let mut arg = PromptArgument::new("session_id");
        arg.description = Some("The session to summarise".into());
        arg.required = Some(true);
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            "summarize_session",
            Some("Ask the model for a summary of a stored conversation"),
            Some(vec![arg]),
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != "summarize_session" {
            return Err(ErrorData::invalid_params(
                format!("no prompt `{}`", request.name),
                Some(json!({"name": request.name})),
            ));
        }
        let session = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("session_id"))
            .and_then(Value::as_str)
            .ok_or_else(|| ErrorData::invalid_params("argument `session_id` is required", None))?;
        let c = ops::retrieve_existing(&self.ctx, session)
            .await
            .map_err(|e| {
                ErrorData::invalid_params(e.to_string(), Some(json!({"session_id": session})))
            })?;
        let mut transcript = String::new();
        if !c.summary.is_empty() {
            transcript.push_str(&c.summary);
            transcript.push_str("\n\n");
        }
        for e in &c.entries {
            transcript.push_str(&format!("{}: {}\n", e.role, e.content));
        }
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Summarise this conversation in a few sentences, keeping decisions, facts and open questions.\n\n{transcript}"
            ),
        )])
        .with_description(format!("Summarise session {session}"))
        .into())
    }
}

/// The transport session (`Mcp-Session-Id`) a request came in on, if any.
fn mcp_session(context: &RequestContext<RoleServer>) -> Option<String> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.headers.get("mcp-session-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn not_found(uri: &str, why: &str) -> ErrorData {
    ErrorData::resource_not_found(
        format!("resource `{uri}` not found: {why}"),
        Some(json!({"uri": uri})),
    )
}

/// A transport session ended by `DELETE /mcp` answers 200: rmcp says 202 Accepted, which
/// the 2025-11-25 transport reserves for notifications and responses a server takes in;
/// the deletion is done when it answers.
pub(super) async fn session_deleted(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let delete = req.method() == axum::http::Method::DELETE;
    let mut resp = next.run(req).await;
    if delete && resp.status() == axum::http::StatusCode::ACCEPTED {
        *resp.status_mut() = axum::http::StatusCode::OK;
    }
    resp
}

/// `/mcp`'s refusals as JSON-RPC errors: rmcp answers a body it cannot read, or a request
/// it will not take, in plain text; a client gets `{jsonrpc, id: null, error: {code,
/// message}}` instead — a parse error (-32700, HTTP 400) for a body that is not a JSON-RPC
/// message, an invalid request (-32600) otherwise, the status kept.
pub(super) async fn jsonrpc_refusal(resp: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json") || c.starts_with("text/event-stream"));
    if !status.is_client_error() || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let unreadable = text.starts_with("fail to deserialize");
    let (status, code) = if unreadable {
        (StatusCode::BAD_REQUEST, -32700)
    } else {
        (status, -32600)
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        text
    };
    parts.status = status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    (parts, axum::Json(body)).into_response()
}
