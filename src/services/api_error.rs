//! Errors in each AI API's own shape, shared by the mock model and the gateway: OpenAI
//! `{error: {message, type, param, code}}`, Anthropic `{type: "error", error: {type,
//! message}}`; 429s carry `Retry-After` and `retry-after-ms`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which API's conventions a route follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// OpenAI-compatible routes.
    OpenAi,
    /// Anthropic-compatible routes (`/v1/messages…`).
    Anthropic,
}

/// An error answer.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    /// The API shape.
    pub api: Api,
    /// The status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
    /// Seconds to advertise in `Retry-After`.
    pub retry_after: Option<f64>,
    /// The offending parameter, if known (OpenAI's `param`).
    pub param: Option<String>,
    /// Sent as `x-should-retry` (the gateway's "my own retries are spent").
    pub should_retry: Option<bool>,
    /// OpenAI's `code`, when it is not the one the status implies (`invalid_type`…).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub(crate) fn new(api: Api, status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            api,
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
            retry_after: None,
            param: None,
            should_retry: None,
            code: None,
        }
    }

    /// 400 for a bad request body.
    pub(crate) fn bad_request(api: Api, message: impl Into<String>) -> ApiError {
        ApiError::new(api, 400, message)
    }

    /// The OpenAI `type` and `code` for a status.
    fn openai_kind(&self) -> (&'static str, Option<&'static str>) {
        match self.status.as_u16() {
            401 => ("invalid_request_error", Some("invalid_api_key")),
            403 => ("permission_error", None),
            404 => ("invalid_request_error", Some("not_found")),
            413 => ("invalid_request_error", Some("request_too_large")),
            429 => ("requests", Some("rate_limit_exceeded")),
            400..=499 => ("invalid_request_error", None),
            503 | 529 => ("server_error", Some("overloaded")),
            _ => ("server_error", None),
        }
    }

    /// The Anthropic error `type` for a status.
    fn anthropic_kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 | 503 => "overloaded_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> serde_json::Value {
        match self.api {
            Api::OpenAi => {
                let (kind, code) = self.openai_kind();
                let code = self.code.or(code);
                json!({"error": {"message": self.message, "type": kind, "param": self.param, "code": code}})
            }
            Api::Anthropic => json!({
                "type": "error",
                "error": {"type": self.anthropic_kind(), "message": self.message}
            }),
        }
    }

    /// The body as it travels inside a stream (a mid-stream failure).
    pub(crate) fn stream_frame(&self) -> String {
        match self.api {
            Api::OpenAi => format!("data: {}\n\n", self.body()),
            Api::Anthropic => format!("event: error\ndata: {}\n\n", self.body()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        let h = resp.headers_mut();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&(secs.ceil().max(0.0) as u64).to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
            if let Ok(v) =
                HeaderValue::from_str(&((secs * 1000.0).round().max(0.0) as u64).to_string())
            {
                h.insert("retry-after-ms", v);
            }
        }
        if let Some(retry) = self.should_retry {
            h.insert(
                "x-should-retry",
                HeaderValue::from_static(if retry { "true" } else { "false" }),
            );
        }
        resp
    }
}

/// The model routes both wire formats serve, for the hint of an unknown route.
const KNOWN_ROUTES: &[&str] = &[
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/models",
];

/// The answer to an unknown route: a JSON 404 in the API's shape (Anthropic's when the
/// request carries `anthropic-version` or names `messages`), with the base-URL hint when
/// the path is a known route with its `/v1` missing or doubled.
pub(crate) fn unknown_route(
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    anthropic: bool,
) -> Response {
    let path = uri.path();
    let api = if anthropic || path.contains("messages") {
        Api::Anthropic
    } else {
        Api::OpenAi
    };
    let fixed = path
        .strip_prefix("/v1/v1")
        .map(|rest| format!("/v1{rest}"))
        .unwrap_or_else(|| format!("/v1{path}"));
    let hint = if KNOWN_ROUTES.contains(&fixed.as_str()) {
        format!(
            ": did you mean {fixed}? OpenAI SDKs want the base URL with /v1, Anthropic SDKs without"
        )
    } else {
        String::new()
    };
    ApiError::new(api, 404, format!("no route `{method} {path}`{hint}")).into_response()
}

/// `method_not_allowed_fallback` handler: a JSON 405 in the route's API shape.
pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    let path = uri.path();
    let api = if headers.contains_key("anthropic-version") || path.contains("messages") {
        Api::Anthropic
    } else {
        Api::OpenAi
    };
    let message = format!("`{path}` does not take {method}");
    ApiError::new(api, 405, message).into_response()
}

/// `fallback` handler: [`unknown_route`].
pub(crate) async fn fallback(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    unknown_route(&method, &uri, headers.contains_key("anthropic-version"))
}

/// A model list in Anthropic's shape (`{data: [{type: model, id, display_name,
/// created_at}], has_more, first_id, last_id}`), from OpenAI-shaped entries.
pub(crate) fn anthropic_models(openai_entries: &[serde_json::Value]) -> serde_json::Value {
    let data: Vec<serde_json::Value> = openai_entries
        .iter()
        .filter_map(|m| m.get("id").and_then(serde_json::Value::as_str))
        .map(|id| {
            json!({"type": "model", "id": id, "display_name": id,
                   "created_at": "2023-11-14T22:13:20Z"})
        })
        .collect();
    let first = data.first().map(|m| m["id"].clone());
    let last = data.last().map(|m| m["id"].clone());
    json!({"data": data, "has_more": false, "first_id": first, "last_id": last})
}
