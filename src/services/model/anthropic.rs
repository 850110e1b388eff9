//! Anthropic-compatible routes: `POST /v1/messages` (plain, and streamed with an `event:`
//! line on every frame: `message_start`, `content_block_start`, `ping`,
//! `content_block_delta`…, `content_block_stop`, `message_delta`, `message_stop`) and
//! `POST /v1/messages/count_tokens`. Any `anthropic-version` is accepted.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::answer::{Answer, decide, id, pieces};
use super::body::{all_text, content_text, json as read_json};
use super::config::{Fault, Latency};
use super::memo::Parsed;
use super::state::{AppState, Call, fault_before_answer, fault_error};
use super::stream::{Frames, event, token_delay, total_delay};
use super::strict::Route;
use super::text::count_tokens;
use super::turn::Turn;
use crate::services::api_error::{Api, ApiError};

const API: Api = Api::Anthropic;

#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    messages: Vec<Value>,
    max_tokens: Option<u32>,
    system: Option<Value>,
    stream: Option<bool>,
    tools: Option<Box<RawValue>>,
    tool_choice: Option<Value>,
    output_config: Option<Box<RawValue>>,
    /// The structured-outputs beta's spelling of `output_config.format`.
    output_format: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
struct CountRequest {
    /// Required by the API; not needed to count.
    #[serde(rename = "model")]
    _model: String,
    messages: Vec<Value>,
    system: Option<Value>,
    tools: Option<Box<RawValue>>,
}

fn input_tokens(messages: &[Value], system: Option<&Value>, tools: Option<&str>) -> u32 {
    count_tokens(&all_text(messages))
        + system.map_or(0, |s| count_tokens(&content_text(s)))
        + tools.map_or(0, count_tokens)
}

/// `POST /v1/messages/count_tokens`.
pub(super) async fn count(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        s.admit(API, &headers)?;
        let req: CountRequest = read_json(
            Route::CountTokens,
            s.config.strict,
            body,
            s.config.max_body_bytes,
        )
        .await?;
        let n = input_tokens(
            &req.messages,
            req.system.as_ref(),
            req.tools.as_deref().map(RawValue::get),
        );
        Ok::<_, ApiError>(axum::Json(json!({"input_tokens": n})).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/messages`.
pub(super) async fn messages(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    inner(&s, &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn inner(s: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let fault = s.admit(API, headers)?;
    let req: MessagesRequest = read_json(
        Route::Messages,
        s.config.strict,
        body,
        s.config.max_body_bytes,
    )
    .await?;
    let Some(max_tokens) = req.max_tokens else {
        return Err(ApiError::bad_request(API, "max_tokens: Field required"));
    };
    if req.messages.is_empty() {
        return Err(ApiError::bad_request(
            API,
            "messages: at least one message is required",
        ));
    }
    fault_before_answer(API, fault, req.stream == Some(true)).await?;
    let tools = s.fragment(API, "tools", req.tools.as_deref())?;
    let config = s.fragment(API, "output_config", req.output_config.as_deref())?;
    let beta = s.fragment(API, "output_format", req.output_format.as_deref())?;
    let format = config
        .as_ref()
        .and_then(|c| c.member("format"))
        .or(beta.as_ref().map(Parsed::whole));
    let mut turn = Turn::from_messages(
        &req.messages,
        tools.as_ref().map(Parsed::whole),
        req.tool_choice.as_ref(),
        format,
    )?;
    turn.limit = Some(max_tokens);
    let tools_text = req.tools.as_ref().map(|t| t.get());
    let in_tokens = input_tokens(&req.messages, req.system.as_ref(), tools_text);
    let answer = decide(s, API, &turn)?;
    let out_tokens = answer.tokens();
    s.record_call(
        "/v1/messages",
        Call {
            api: API,
            operation: "chat",
            model: &req.model,
            input: in_tokens,
            output: out_tokens,
            streamed: req.stream == Some(true),
        },
    );
    let out = Message {
        model: &req.model,
        id: id("msg_"),
        tool_ids: match &answer {
            Answer::Tools(calls) => calls.iter().map(|_| id("toolu_")).collect(),
            Answer::Text(_) => Vec::new(),
        },
        in_tokens,
        out_tokens,
    };
    if req.stream != Some(true) {
        let delay = total_delay(&s.config.latency, answer.steps());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        return Ok(axum::Json(out.plain(&answer)).into_response());
    }
    let fail_after = fault.and_then(|f| f.after_tokens.map(|n| (n as usize, f)));
    Ok(out
        .stream(&answer, &s.config.latency, fail_after)
        .into_response())
}

/// What every shape of one message carries.
struct Message<'a> {
    model: &'a str,
    id: String,
    /// One id per tool call of the answer.
    tool_ids: Vec<String>,
    in_tokens: u32,
    out_tokens: u32,
}

impl Message<'_> {
    fn stop_reason(answer: &Answer) -> &'static str {
        match answer {
            Answer::Text(r) if r.truncated => "max_tokens",
            Answer::Text(_) => "end_turn",
            Answer::Tools(_) => "tool_use",
        }
    }

    fn usage(&self, output: u32) -> Value {
        json!({"input_tokens": self.in_tokens, "output_tokens": output,
               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
               "service_tier": "standard"})
    }

    /// The `message` object.
    fn plain(&self, answer: &Answer) -> Value {
        let content = match answer {
            Answer::Text(r) => json!([{"type": "text", "text": r.text()}]),
            Answer::Tools(calls) => Value::Array(
                calls
                    .iter()
                    .zip(&self.tool_ids)
                    .map(|(t, tid)| {
                        json!({"type": "tool_use", "id": tid, "name": t.name, "input": t.arguments_object()})
                    })
                    .collect(),
            ),
        };
        json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": content, "stop_reason": Self::stop_reason(answer), "stop_sequence": null,
            "usage": self.usage(self.out_tokens)
        })
    }

    /// The event sequence: `message_start` (with the input tokens), a content block per
    /// text or tool call with its deltas, `message_delta` (with both counts),
    /// `message_stop`; a mid-stream fault cuts it after `fail_after` tokens.
    fn stream(
        &self,
        answer: &Answer,
        latency: &Latency,
        fail_after: Option<(usize, &Fault)>,
    ) -> Frames {
        let mut frames = Frames::default();
        frames.push(event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": self.usage(1)}}),
        ));
        match answer {
            Answer::Text(r) => {
                frames.push(event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}),
                ));
                frames.push(event("ping", &json!({"type": "ping"})));
                for (i, tok) in r.tokens().enumerate() {
                    if let Some((n, f)) = fail_after
                        && i == n
                    {
                        if let Some(e) = fault_error(API, f) {
                            frames.push_after(token_delay(latency, i), e.stream_frame());
                        }
                        return frames;
                    }
                    frames.push_after(
                        token_delay(latency, i),
                        event(
                            "content_block_delta",
                            &json!({"type": "content_block_delta", "index": 0,
                                    "delta": {"type": "text_delta", "text": tok}}),
                        ),
                    );
                }
            }
            Answer::Tools(calls) => {
                for (index, (t, tid)) in calls.iter().zip(&self.tool_ids).enumerate() {
                    if index > 0 {
                        frames.push(event(
                            "content_block_stop",
                            &json!({"type": "content_block_stop", "index": index - 1}),
                        ));
                    }
                    frames.push(event(
                        "content_block_start",
                        &json!({"type": "content_block_start", "index": index, "content_block":
                            {"type": "tool_use", "id": tid, "name": t.name, "input": {}}}),
                    ));
                    for (i, piece) in pieces(&t.arguments_json(), 3).into_iter().enumerate() {
                        frames.push_after(
                            token_delay(latency, i),
                            event(
                                "content_block_delta",
                                &json!({"type": "content_block_delta", "index": index,
                                        "delta": {"type": "input_json_delta", "partial_json": piece}}),
                            ),
                        );
                    }
                }
            }
        }
        let last_block = self.tool_ids.len().saturating_sub(1);
        frames.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": last_block}),
        ));
        // Both counts in the last delta, as the API sends them (clients that read usage
        // from here, like langchain-anthropic, see the input too).
        let mut final_usage = self.usage(self.out_tokens);
        if let Some(u) = final_usage.as_object_mut() {
            u.remove("service_tier");
        }
        frames.push(event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": Self::stop_reason(answer), "stop_sequence": null},
                    "usage": final_usage}),
        ));
        frames.push(event("message_stop", &json!({"type": "message_stop"})));
        frames
    }
}
