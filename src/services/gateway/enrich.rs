//! Context enrichment with `X-Session-Id`: the session's context (within a budget) is
//! prepended to the request, and the user turn and the model's full reply are stored back
//! after the response — off its critical path, yet ordered per session: a session's next
//! request waits until the turns before it are stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::OwnedMutexGuard;

use super::pool::Endpoint;

/// Which API a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// OpenAI chat completions.
    Chat,
    /// Anthropic messages.
    Messages,
    /// OpenAI Responses.
    Responses,
}

/// The context prepended to one request.
#[derive(Debug, Default, Clone)]
pub(super) struct Prepended {
    /// Entries prepended.
    pub entries: usize,
    /// Their tokens (plus the summary's).
    pub tokens: u64,
}

/// Per-session ordering: a session's requests run one after another, each holding the
/// session until its turns are stored.
#[derive(Debug, Default)]
pub(super) struct SessionLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl SessionLocks {
    /// Waits for the session's previous request to be stored, then holds it.
    pub(super) async fn hold(&self, session: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if map.len() > 10_000 {
                // Forget sessions nobody holds.
                map.retain(|_, l| Arc::strong_count(l) > 1);
            }
            map.entry(session.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// Talks to the context server's REST API.
#[derive(Debug, Clone)]
pub(super) struct ContextClient {
    endpoint: Arc<Endpoint>,
    /// `Bearer <token>`, when the context server wants one.
    authorization: Option<HeaderValue>,
}

const CONTEXT_TIMEOUT: Duration = Duration::from_secs(2);

impl ContextClient {
    /// A client of the context server at `endpoint`.
    pub(super) fn new(endpoint: Arc<Endpoint>, token: Option<&str>) -> ContextClient {
        let authorization = token.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok());
        ContextClient {
            endpoint,
            authorization,
        }
    }

    /// The context server.
    pub(super) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// The `authorization` header the context server wants, if any.
    pub(super) fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(v) = &self.authorization {
            h.insert(header::AUTHORIZATION, v.clone());
        }
        h
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        trace: Option<&opentelemetry::Context>,
    ) -> Result<(u16, Value), String> {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let mut headers = self.headers();
        if let Some(cx) = trace {
            crate::services::otel::inject(cx, &mut headers);
        }
        let fut = async {
            let resp = super::upstream::send(&self.endpoint, &method, path, headers, body).await?;
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        tokio::time::timeout(CONTEXT_TIMEOUT, fut)
            .await
            .map_err(|_| format!("no answer within {} s", CONTEXT_TIMEOUT.as_secs()))?
    }

    /// The session's context within `budget`, favouring `query`; `Ok(None)` for a new session.
    pub(super) async fn retrieve(
        &self,
        session: &str,
        budget: u32,
        query: &str,
        trace: Option<&opentelemetry::Context>,
    ) -> Result<Option<Value>, String> {
        let q: String = url_encode(query.chars().take(500).collect::<String>().as_str());
        let path = format!(
            "/v1/sessions/{}/context?max_tokens={budget}&query={q}",
            url_encode(session)
        );
        match self.call(Method::GET, &path, None, trace).await? {
            (200, v) => Ok(Some(v)),
            (404, _) => Ok(None),
            (s, v) => Err(format!("the context server answered {s}: {v}")),
        }
    }

    /// Stores one turn.
    pub(super) async fn store(
        &self,
        session: &str,
        role: &str,
        content: &str,
        trace: Option<&opentelemetry::Context>,
    ) -> Result<(), String> {
        let path = format!("/v1/sessions/{}/entries", url_encode(session));
        match self
            .call(
                Method::POST,
                &path,
                Some(json!({"role": role, "content": content})),
                trace,
            )
            .await?
        {
            (201, _) => Ok(()),
            (s, v) => Err(format!("the context server answered {s}: {v}")),
        }
    }
}

fn url_encode(s: &str) -> String {
    // Everything but RFC 3986's unreserved characters.
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// The last user message's text of a request, and the texts of its user turns.
pub(super) fn last_user_text(shape: Shape, body: &Value) -> String {
    let text = |c: &Value| match c {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    match shape {
        Shape::Chat | Shape::Messages => body
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| {
                m.iter()
                    .rev()
                    .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            })
            .and_then(|m| m.get("content"))
            .map(text)
            .unwrap_or_default(),
        Shape::Responses => match body.get("input") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .rev()
                .find(|i| {
                    i.get("role")
                        .and_then(Value::as_str)
                        .is_none_or(|r| r == "user")
                })
                .and_then(|i| i.get("content"))
                .map(text)
                .unwrap_or_default(),
            _ => String::new(),
        },
    }
}

/// Prepends `context` (a context-server answer) to `body`; reports what was added.
pub(super) fn prepend(shape: Shape, body: &mut Value, context: &Value) -> Prepended {
    let entries: Vec<(String, String)> = context
        .get("entries")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .filter_map(|e| {
                    Some((
                        e.get("role")?.as_str()?.to_string(),
                        e.get("content")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let summary = context
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let added = Prepended {
        entries: entries.len(),
        tokens: context.get("tokens").and_then(Value::as_u64).unwrap_or(0),
    };
    if entries.is_empty() && summary.is_empty() {
        return Prepended::default();
    }
    let transcript = || {
        let mut t = String::from("Context from earlier in this conversation:\n");
        if !summary.is_empty() {
            t.push_str(&summary);
            t.push('\n');
        }
        for (role, content) in &entries {
            t.push_str(&format!("{role}: {content}\n"));
        }
        t
    };
    match shape {
        Shape::Chat => {
            let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
                return Prepended::default();
            };
            let mut before: Vec<Value> = Vec::new();
            if !summary.is_empty() {
                before.push(json!({"role": "system", "content": format!("Earlier in this conversation:\n{summary}")}));
            }
            for (role, content) in &entries {
                let role = if role == "user" || role == "assistant" {
                    role.as_str()
                } else {
                    "system"
                };
                before.push(json!({"role": role, "content": content}));
            }
            // After the client's own leading system messages, before the conversation.
            let at = messages
                .iter()
                .take_while(|m| {
                    matches!(
                        m.get("role").and_then(Value::as_str),
                        Some("system" | "developer")
                    )
                })
                .count();
            messages.splice(at..at, before);
        }
        Shape::Messages => {
            let existing = match body.get("system") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(blocks)) => blocks
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            };
            let system = if existing.is_empty() {
                transcript()
            } else {
                format!("{existing}\n\n{}", transcript())
            };
            body["system"] = json!(system);
        }
        Shape::Responses => {
            let existing = body
                .get("instructions")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let instructions = if existing.is_empty() {
                transcript()
            } else {
                format!("{existing}\n\n{}", transcript())
            };
            body["instructions"] = json!(instructions);
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Value {
        json!({"entries": [{"role": "user", "content": "my name is Ada"}, {"role": "assistant", "content": "hi Ada"}],
               "summary": "", "tokens": 9})
    }

    #[test]
    fn prepends_in_each_shape() {
        let mut chat = json!({"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "who am I?"}]});
        let p = prepend(Shape::Chat, &mut chat, &ctx());
        assert_eq!((p.entries, p.tokens), (2, 9));
        let roles: Vec<&str> = chat["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["role"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(last_user_text(Shape::Chat, &chat), "who am I?");
        let mut msg = json!({"model": "m", "system": "be brief", "messages": [{"role": "user", "content": "who am I?"}]});
        prepend(Shape::Messages, &mut msg, &ctx());
        assert!(
            msg["system"]
                .as_str()
                .is_some_and(|s| s.starts_with("be brief") && s.contains("user: my name is Ada"))
        );
        let mut resp = json!({"model": "m", "input": "who am I?"});
        prepend(Shape::Responses, &mut resp, &ctx());
        assert!(
            resp["instructions"]
                .as_str()
                .is_some_and(|s| s.contains("assistant: hi Ada"))
        );
        assert_eq!(last_user_text(Shape::Responses, &resp), "who am I?");
        let mut empty = json!({"messages": []});
        assert_eq!(
            prepend(
                Shape::Chat,
                &mut empty,
                &json!({"entries": [], "summary": ""})
            )
            .entries,
            0
        );
    }
}
