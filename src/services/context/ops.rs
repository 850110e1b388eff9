//! The operations both faces of the server share (REST and MCP tools): validation, the
//! store's writes, retrieval.

use opentelemetry::KeyValue;
use serde_json::Value;

use super::Ctx;
use super::retrieve::{self, Context};
use super::store::{Pruned, SessionInfo, StoreError, Stored, read};

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum OpError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// Content over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// No such session or entry.
    #[error("{0}")]
    NotFound(String),
    /// The store failed.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> OpError {
        match e {
            StoreError::UnknownSession(_) | StoreError::UnknownEntry { .. } => {
                OpError::NotFound(e.to_string())
            }
            StoreError::Db(_) | StoreError::Postgres(_) | StoreError::Task(_) => {
                OpError::Internal(e.to_string())
            }
        }
    }
}

const ROLES: [&str; 4] = ["user", "assistant", "system", "tool"];

/// Session ids: 1–128 of letters, digits, `-`, `_`, `.`, `:`, `@`.
pub(super) fn check_session(id: &str) -> Result<(), OpError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'));
    if ok {
        Ok(())
    } else {
        Err(OpError::Invalid(format!(
            "`{id}` is not a session id: use 1 to 128 letters, digits, `-`, `_`, `.`, `:` or `@`"
        )))
    }
}

fn check_content(ctx: &Ctx, content: &str) -> Result<(), OpError> {
    if content.len() > ctx.config.max_content_bytes {
        return Err(OpError::TooLarge(format!(
            "content is {} bytes; the limit is {} (`max_content_bytes`)",
            content.len(),
            ctx.config.max_content_bytes
        )));
    }
    Ok(())
}

/// Stores a turn.
pub(super) async fn store(
    ctx: &Ctx,
    session: String,
    role: String,
    content: String,
    metadata: Option<Value>,
) -> Result<Stored, OpError> {
    check_session(&session)?;
    if !ROLES.contains(&role.as_str()) {
        return Err(OpError::Invalid(format!(
            "`{role}` is not a role: use user, assistant, system or tool"
        )));
    }
    check_content(ctx, &content)?;
    if metadata.as_ref().is_some_and(|m| !m.is_object()) {
        return Err(OpError::Invalid("`metadata` must be an object".into()));
    }
    let stored = ctx
        .store
        .append(session.clone(), role, content, metadata)
        .await?;
    ctx.subscribers.changed(&session).await;
    crate::services::otel::annotate_current("store context", || {
        vec![
            KeyValue::new("stack.context.session", session.clone()),
            KeyValue::new("stack.context.tokens", i64::from(stored.tokens)),
        ]
    });
    Ok(stored)
}

/// The context of a session within a budget; a session with no entries (or none at all)
/// has an empty one.
pub(super) async fn retrieve(
    ctx: &Ctx,
    session: &str,
    query: Option<&str>,
    max_tokens: Option<u32>,
) -> Result<Context, OpError> {
    check_session(session)?;
    let budget = max_tokens.unwrap_or(ctx.config.default_max_tokens);
    if budget == 0 {
        return Err(OpError::Invalid("`max_tokens` must be at least 1".into()));
    }
    let c = match ctx.store.session(session).await? {
        Some(s) => retrieve::context(session, &read(&s), budget, query),
        None => Context::empty(session, budget),
    };
    crate::services::otel::annotate_current("retrieve context", || {
        vec![
            KeyValue::new("stack.context.session", session.to_string()),
            KeyValue::new("stack.context.entries", c.entries.len() as i64),
            KeyValue::new("stack.context.omitted", c.omitted as i64),
            KeyValue::new("stack.context.tokens", i64::from(c.tokens)),
            KeyValue::new("stack.context.max_tokens", i64::from(c.max_tokens)),
            KeyValue::new(
                "stack.context.entry_ids",
                opentelemetry::Value::Array(
                    c.entries
                        .iter()
                        .map(|e| e.id.clone().into())
                        .collect::<Vec<opentelemetry::StringValue>>()
                        .into(),
                ),
            ),
        ]
    });
    Ok(c)
}

/// The context of a session that has entries (the resource and the prompt name one).
pub(super) async fn retrieve_existing(ctx: &Ctx, session: &str) -> Result<Context, OpError> {
    let c = retrieve(ctx, session, None, None).await?;
    if c.entries.is_empty() && c.omitted == 0 {
        return Err(OpError::NotFound(format!("no session `{session}`")));
    }
    Ok(c)
}

/// Replaces an entry's content.
pub(super) async fn update(
    ctx: &Ctx,
    session: String,
    entry: String,
    content: String,
) -> Result<Stored, OpError> {
    check_session(&session)?;
    check_content(ctx, &content)?;
    let stored = ctx.store.update(session.clone(), entry, content).await?;
    ctx.subscribers.changed(&session).await;
    Ok(stored)
}

/// Every session with entries.
pub(super) async fn list(ctx: &Ctx) -> Result<Vec<SessionInfo>, OpError> {
    Ok(ctx.store.list().await?)
}

/// Prunes a session by budget or count.
pub(super) async fn prune(
    ctx: &Ctx,
    session: String,
    max_tokens: Option<u64>,
    keep_last: Option<usize>,
) -> Result<Pruned, OpError> {
    check_session(&session)?;
    if max_tokens.is_none() && keep_last.is_none() {
        return Err(OpError::Invalid("give `max_tokens` or `keep_last`".into()));
    }
    let pruned = ctx
        .store
        .prune(session.clone(), max_tokens, keep_last)
        .await?;
    ctx.subscribers.changed(&session).await;
    Ok(pruned)
}

/// Deletes a session.
pub(super) async fn delete(ctx: &Ctx, session: String) -> Result<usize, OpError> {
    check_session(&session)?;
    let n = ctx.store.delete(session.clone()).await?;
    ctx.subscribers.changed(&session).await;
    Ok(n)
}
