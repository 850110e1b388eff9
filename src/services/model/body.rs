//! Reading a request: the body within the size limit (413), JSON that parses (400), the
//! fields the route needs (400 naming the field), and the texts in it.

use axum::body::Body;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::strict::{self, Route};
use crate::services::api_error::{Api, ApiError};

/// Reads and parses the JSON body of `route` as `T`; with `strict`, first refuses what the
/// real API refuses.
pub(super) async fn json<T: DeserializeOwned>(
    route: Route,
    strict: bool,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let api = route.api();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                api,
                413,
                format!("request body is larger than {limit} bytes"),
            )
        } else {
            ApiError::bad_request(api, format!("cannot read the request body: {e}"))
        }
    })?;
    if strict {
        // Parsed twice, as a tree to check and then as `T` (whose raw fragments cannot be
        // taken from a tree): the strict mode is for tests, not for speed.
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| refusal(api, &e))?;
        strict::check(route, &value)?;
    }
    serde_json::from_slice(&bytes).map_err(|e| refusal(api, &e))
}

/// A body serde could not read, as the 400 naming the field.
fn refusal(api: Api, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = match e.classify() {
        Category::Syntax | Category::Eof => format!("malformed JSON in the request body: {e}"),
        Category::Data | Category::Io => format!("invalid request: {e}"),
    };
    let mut err = ApiError::bad_request(api, message);
    err.param = field_of(&e.to_string());
    err
}

/// The field named in a serde message (`missing field `messages``).
fn field_of(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

/// The text of a message `content`: a string, or the `text` of its parts.
pub(super) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                _ => p.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// All text of `messages` (for the prompt's token count).
pub(super) fn all_text(messages: &[Value]) -> String {
    messages
        .iter()
        .filter_map(|m| m.get("content"))
        .map(content_text)
        .collect::<Vec<_>>()
        .join("\n")
}
