//! Routes passed through: `/mcp` and `/v1/sessions…` to the context server (the key is
//! checked here; SSE streams and both MCP eras pass untouched), and `/v1/models` merged
//! from every upstream.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::Gateway;
use super::keys::Refusal;
use super::upstream::strip_hop_headers;
use crate::services::api_error::{Api, ApiError};

fn refuse(api: Api, r: Refusal) -> Response {
    match r {
        Refusal::Unauthorized(m) => ApiError::new(api, 401, m).into_response(),
        Refusal::Limited { what, retry_after } => {
            let mut e = ApiError::new(api, 429, format!("rate limit reached for {what}"));
            e.retry_after = Some(retry_after);
            e.into_response()
        }
    }
}

/// `/mcp` and `/v1/sessions…` → the context server.
pub(super) async fn context(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    if let Err(r) = gw.keys.admit(req.headers(), 0) {
        return refuse(Api::OpenAi, r);
    }
    let Some(ctx) = &gw.context else {
        return ApiError::new(Api::OpenAi, 404, "this gateway has no `context_url`")
            .into_response();
    };
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    // Read your writes: a session's turns are stored after its replies are sent; a read of
    // that session through the gateway waits until they are in.
    if let Some(session) = session_of(parts.uri.path()) {
        drop(gw.sessions.hold(&session).await);
    }
    let mut headers = super::upstream::forwardable(&parts.headers, false);
    if let Some(v) = ctx.authorization() {
        headers.insert(header::AUTHORIZATION, v.clone());
    }
    match super::upstream::send(ctx.endpoint(), &parts.method, &path, headers, body).await {
        Ok(resp) => {
            let (mut p, incoming) = resp.into_parts();
            strip_hop_headers(&mut p.headers);
            Response::from_parts(p, Body::new(incoming))
        }
        Err(e) => {
            let mut err = ApiError::new(
                Api::OpenAi,
                502,
                format!("the context server is unreachable: {e}"),
            );
            err.should_retry = Some(false);
            err.into_response()
        }
    }
}

/// The session of a `/v1/sessions/{id}…` path, percent-decoded.
fn session_of(path: &str) -> Option<String> {
    let raw = path.strip_prefix("/v1/sessions/")?.split('/').next()?;
    let session = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    (!session.is_empty()).then(|| session.into_owned())
}

/// `GET /v1/models`: every upstream's list, merged by id, and the aliases; in Anthropic's
/// shape when the request carries `anthropic-version`.
pub(super) async fn models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Err(r) = gw.keys.admit(&headers, 0) {
        return refuse(Api::OpenAi, r);
    }
    let data = merged_models(&gw, &headers).await;
    if headers.contains_key("anthropic-version") {
        return axum::Json(crate::services::api_error::anthropic_models(&data)).into_response();
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/models/{id}`: one model of the merged list (an alias included).
pub(super) async fn model(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let anthropic = headers.contains_key("anthropic-version");
    let api = if anthropic {
        Api::Anthropic
    } else {
        Api::OpenAi
    };
    if let Err(r) = gw.keys.admit(&headers, 0) {
        return refuse(api, r);
    }
    let data = merged_models(&gw, &headers).await;
    let Some(entry) = data.into_iter().find(|m| m["id"] == id.as_str()) else {
        return ApiError::new(
            api,
            404,
            format!("model `{id}` is not offered by any upstream, nor an alias"),
        )
        .into_response();
    };
    if anthropic {
        let list = crate::services::api_error::anthropic_models(std::slice::from_ref(&entry));
        return axum::Json(list["data"][0].clone()).into_response();
    }
    axum::Json(entry).into_response()
}

/// Every upstream's models (OpenAI entries), merged by id, then the aliases.
async fn merged_models(gw: &Gateway, headers: &HeaderMap) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    let mut data: Vec<Value> = Vec::new();
    let names: Vec<std::sync::Arc<str>> = gw.upstreams.all().map(|(n, _)| n.clone()).collect();
    for name in names {
        let Ok((resp, _, _)) = gw
            .upstreams
            .forward(
                &name,
                &Method::GET,
                "/v1/models",
                headers,
                &super::upstream::Outgoing::default(),
                None,
            )
            .await
        else {
            continue;
        };
        if !resp.status().is_success() {
            continue;
        }
        let Ok(body) = resp.into_body().collect().await else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
            continue;
        };
        for m in v
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = m.get("id").and_then(Value::as_str)
                && seen.insert(id.to_string())
            {
                data.push(m.clone());
            }
        }
    }
    for (alias, (_, model)) in gw.upstreams.aliases() {
        if seen.insert(alias.clone()) {
            data.push(
                json!({"id": alias, "object": "model", "created": 1_700_000_000u64,
                             "owned_by": format!("stack (alias of {model})")}),
            );
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::session_of;

    #[test]
    fn sessions_in_paths() {
        assert_eq!(
            session_of("/v1/sessions/demo/context").as_deref(),
            Some("demo")
        );
        assert_eq!(session_of("/v1/sessions/a%20b").as_deref(), Some("a b"));
        assert_eq!(session_of("/v1/sessions/").as_deref(), None);
        assert_eq!(session_of("/mcp"), None);
    }
}
