//! The REST API (SPEC §4.1): entries in, budgeted context out. Malformed JSON is 400,
//! oversized content 413, an unknown session or entry 404.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Ctx;
use super::ops::{self, OpError};

/// A REST error: `{"error": {"type", "message"}}`.
pub(super) struct RestError(pub StatusCode, pub String);

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let kind = match self.0.as_u16() {
            400 => "invalid_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            413 => "too_large",
            _ => "internal",
        };
        (
            self.0,
            axum::Json(json!({"error": {"type": kind, "message": self.1}})),
        )
            .into_response()
    }
}

/// An unknown route: a JSON 404 naming it.
pub(super) async fn unknown_route(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    RestError(
        StatusCode::NOT_FOUND,
        format!(
            "no route `{method} {}`: the REST API is under /v1/sessions, MCP at /mcp",
            uri.path()
        ),
    )
    .into_response()
}

/// A known route asked with the wrong method: a JSON 405.
pub(super) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    RestError(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("`{}` does not take {method}", uri.path()),
    )
    .into_response()
}

impl From<OpError> for RestError {
    fn from(e: OpError) -> RestError {
        let status = match &e {
            OpError::Invalid(_) => StatusCode::BAD_REQUEST,
            OpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OpError::NotFound(_) => StatusCode::NOT_FOUND,
            OpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        RestError(status, e.to_string())
    }
}

async fn body<T: serde::de::DeserializeOwned>(ctx: &Ctx, body: Body) -> Result<T, RestError> {
    // Room for the JSON around the largest content allowed.
    let limit = ctx.config.max_content_bytes + 64 * 1024;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        RestError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        use serde_json::error::Category;
        let what = match e.classify() {
            Category::Syntax | Category::Eof => "malformed JSON",
            _ => "invalid request",
        };
        RestError(StatusCode::BAD_REQUEST, format!("{what}: {e}"))
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    role: String,
    content: String,
    metadata: Option<Value>,
}

/// `POST /v1/sessions/{id}/entries` → 201 `{id, session_id, tokens}`.
pub(super) async fn add(
    State(ctx): State<Arc<Ctx>>,
    Path(session): Path<String>,
    b: Body,
) -> Result<Response, RestError> {
    let e: NewEntry = body(&ctx, b).await?;
    let stored = ops::store(&ctx, session, e.role, e.content, e.metadata).await?;
    Ok((StatusCode::CREATED, axum::Json(stored)).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct ContextQuery {
    max_tokens: Option<u32>,
    query: Option<String>,
}

/// `GET /v1/sessions/{id}/context?max_tokens=&query=`.
pub(super) async fn context(
    State(ctx): State<Arc<Ctx>>,
    Path(session): Path<String>,
    q: Result<Query<ContextQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, RestError> {
    let Query(q) = q.map_err(|e| RestError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let c = ops::retrieve(&ctx, &session, q.query.as_deref(), q.max_tokens).await?;
    Ok(axum::Json(c).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    content: String,
}

/// `PATCH /v1/sessions/{id}/entries/{entry_id}`.
pub(super) async fn update(
    State(ctx): State<Arc<Ctx>>,
    Path((session, entry)): Path<(String, String)>,
    b: Body,
) -> Result<Response, RestError> {
    let p: Patch = body(&ctx, b).await?;
    let stored = ops::update(&ctx, session, entry, p.content).await?;
    Ok(axum::Json(stored).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Prune {
    max_tokens: Option<u64>,
    keep_last: Option<usize>,
}

/// `POST /v1/sessions/{id}/prune` with `{max_tokens}` or `{keep_last}`.
pub(super) async fn prune(
    State(ctx): State<Arc<Ctx>>,
    Path(session): Path<String>,
    b: Body,
) -> Result<Response, RestError> {
    let p: Prune = body(&ctx, b).await?;
    let r = ops::prune(&ctx, session, p.max_tokens, p.keep_last).await?;
    Ok(axum::Json(r).into_response())
}

/// `GET /v1/sessions/{id}`: every entry, oldest first (a line of a `--context-snapshot`).
pub(super) async fn session(
    State(ctx): State<Arc<Ctx>>,
    Path(session): Path<String>,
) -> Result<Response, RestError> {
    let found = ctx
        .store
        .session(&session)
        .await
        .map_err(ops::OpError::from)?;
    let Some(s) = found else {
        return Err(RestError(
            StatusCode::NOT_FOUND,
            format!("no session `{session}`"),
        ));
    };
    let s = super::store::read(&s);
    let entries: Vec<Value> = s
        .entries
        .iter()
        .map(|e| {
            let mut v = json!({"id": e.id, "role": e.role, "content": e.content,
                               "tokens": e.tokens, "created_at": e.created_at});
            if let Some(m) = &e.metadata {
                v["metadata"] = m.clone();
            }
            v
        })
        .collect();
    let tokens: u64 = s.entries.iter().map(|e| u64::from(e.tokens)).sum();
    Ok(
        axum::Json(json!({"session_id": session, "entries": entries, "tokens": tokens}))
            .into_response(),
    )
}

/// `GET /v1/sessions`.
pub(super) async fn list(State(ctx): State<Arc<Ctx>>) -> Result<Response, RestError> {
    let sessions = ops::list(&ctx).await?;
    Ok(axum::Json(json!({"sessions": sessions})).into_response())
}

/// `DELETE /v1/sessions/{id}`.
pub(super) async fn delete(
    State(ctx): State<Arc<Ctx>>,
    Path(session): Path<String>,
) -> Result<Response, RestError> {
    let n = ops::delete(&ctx, session.clone()).await?;
    Ok(
        axum::Json(json!({"session_id": session, "deleted": true, "entries_removed": n}))
            .into_response(),
    )
}
