//! OpenAI-compatible routes: `GET /v1/models`, `POST /v1/chat/completions` (plain and SSE),
//! `POST /v1/embeddings` (float and base64).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::answer::{Answer, decide, id, now, pieces};
use super::body::{all_text, json as read_json};
use super::config::{Fault, Latency};
use super::memo::Parsed;
use super::state::{AppState, Call, fault_before_answer, fault_error};
use super::stream::{Frames, data, token_delay, total_delay};
use super::strict::Route;
use super::text::{count_tokens, embedding, embedding_base64};
use super::turn::Turn;
use crate::services::api_error::{Api, ApiError};

const API: Api = Api::OpenAi;

/// `GET /v1/models`.
pub(super) async fn models(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = s.admit(API, &headers) {
        return e.into_response();
    }
    let data: Vec<Value> = s.config.models.iter().map(|m| model_entry(m)).collect();
    if headers.contains_key("anthropic-version") {
        return axum::Json(crate::services::api_error::anthropic_models(&data)).into_response();
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/models/{id}`: any name is answered, as by `/v1/chat/completions`.
pub(super) async fn model(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(e) = s.admit(API, &headers) {
        return e.into_response();
    }
    axum::Json(model_entry(&name)).into_response()
}

fn model_entry(name: &str) -> Value {
    json!({"id": name, "object": "model", "created": 1_700_000_000u64, "owned_by": "stack"})
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Value>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    tools: Option<Box<RawValue>>,
    tool_choice: Option<Value>,
    response_format: Option<Box<RawValue>>,
    parallel_tool_calls: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// `POST /v1/chat/completions`.
pub(super) async fn chat(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match chat_inner(&s, &headers, body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn chat_inner(s: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, Response> {
    let fault = s.admit(API, headers).map_err(IntoResponse::into_response)?;
    let req: ChatRequest = read_json(Route::Chat, s.config.strict, body, s.config.max_body_bytes)
        .await
        .map_err(IntoResponse::into_response)?;
    if req.messages.is_empty() {
        let mut e = ApiError::bad_request(API, "`messages` must not be empty");
        e.param = Some("messages".into());
        return Err(e.into_response());
    }
    fault_before_answer(API, fault, req.stream == Some(true))
        .await
        .map_err(IntoResponse::into_response)?;
    let tools = s
        .fragment(API, "tools", req.tools.as_deref())
        .map_err(IntoResponse::into_response)?;
    let format = s
        .fragment(API, "response_format", req.response_format.as_deref())
        .map_err(IntoResponse::into_response)?;
    let mut turn = Turn::from_chat(
        &req.messages,
        tools.as_ref().map(Parsed::whole),
        req.tool_choice.as_ref(),
        format.as_ref().map(Parsed::whole),
        req.parallel_tool_calls,
    )
    .map_err(IntoResponse::into_response)?;
    turn.limit = req.max_completion_tokens.or(req.max_tokens);
    let prompt_tokens = count_tokens(&all_text(&req.messages))
        + req.tools.as_ref().map_or(0, |t| count_tokens(t.get()));
    let answer = decide(s, API, &turn).map_err(IntoResponse::into_response)?;
    let completion_tokens = answer.tokens();
    s.record_call(
        "/v1/chat/completions",
        Call {
            api: API,
            operation: "chat",
            model: &req.model,
            input: prompt_tokens,
            output: completion_tokens,
            streamed: req.stream == Some(true),
        },
    );
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    });
    let out = Completion {
        model: &req.model,
        id: id("chatcmpl-"),
        created: now(),
        usage,
    };
    if req.stream != Some(true) {
        let delay = total_delay(&s.config.latency, answer.steps());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        return Ok(axum::Json(out.plain(&answer)).into_response());
    }
    let include_usage = req.stream_options.and_then(|o| o.include_usage) == Some(true);
    let fail_after = fault.and_then(|f| f.after_tokens.map(|n| (n as usize, f)));
    Ok(out
        .stream(&answer, &s.config.latency, include_usage, fail_after)
        .into_response())
}

/// What every shape of one chat completion carries.
struct Completion<'a> {
    model: &'a str,
    id: String,
    created: u64,
    usage: Value,
}

impl Completion<'_> {
    /// The `chat.completion` object.
    fn plain(&self, answer: &Answer) -> Value {
        let (message, finish) = match answer {
            Answer::Text(r) => (
                json!({"role": "assistant", "content": r.text(), "refusal": null, "annotations": []}),
                if r.truncated { "length" } else { "stop" },
            ),
            Answer::Tools(calls) => {
                let calls: Vec<Value> = calls
                    .iter()
                    .map(|t| {
                        json!({"id": id("call_"), "type": "function",
                               "function": {"name": t.name, "arguments": t.arguments_json()}})
                    })
                    .collect();
                (
                    json!({"role": "assistant", "content": null, "refusal": null, "annotations": [],
                           "tool_calls": calls}),
                    "tool_calls",
                )
            }
        };
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": self.usage, "service_tier": "default", "system_fingerprint": "fp_stack_mock"
        })
    }

    /// One `chat.completion.chunk` frame.
    fn chunk(&self, delta: Value, finish: Option<&str>, include_usage: bool) -> String {
        let mut c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "system_fingerprint": "fp_stack_mock", "service_tier": "default",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        data(&c)
    }

    /// The SSE frames: role, deltas (text or tool-call arguments), the finish, the usage
    /// chunk when asked for, `[DONE]`; a mid-stream fault cuts it after `fail_after` tokens.
    fn stream(
        &self,
        answer: &Answer,
        latency: &Latency,
        include_usage: bool,
        fail_after: Option<(usize, &Fault)>,
    ) -> Frames {
        let chunk = |delta: Value, finish: Option<&str>| self.chunk(delta, finish, include_usage);
        let mut frames = Frames::default();
        let finish = match answer {
            Answer::Text(r) => {
                frames.push(chunk(
                    json!({"role": "assistant", "content": "", "refusal": null}),
                    None,
                ));
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
                        chunk(json!({"content": tok}), None),
                    );
                }
                if r.truncated { "length" } else { "stop" }
            }
            Answer::Tools(calls) => {
                for (index, t) in calls.iter().enumerate() {
                    let mut first = json!({"tool_calls": [{"index": index,
                        "id": id("call_"), "type": "function",
                        "function": {"name": t.name, "arguments": ""}}]});
                    if index == 0 {
                        first["role"] = json!("assistant");
                        first["content"] = Value::Null;
                    }
                    frames.push(chunk(first, None));
                    for (i, piece) in pieces(&t.arguments_json(), 3).into_iter().enumerate() {
                        frames.push_after(
                            token_delay(latency, i),
                            chunk(
                                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                                None,
                            ),
                        );
                    }
                }
                "tool_calls"
            }
        };
        frames.push(chunk(json!({}), Some(finish)));
        if include_usage {
            frames.push(data(&json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": "fp_stack_mock",
                "service_tier": "default", "choices": [], "usage": self.usage
            })));
        }
        frames.push("data: [DONE]\n\n".to_string());
        frames
    }
}

#[derive(Debug, Deserialize)]
struct EmbeddingRequest {
    model: String,
    input: Value,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
}

/// `POST /v1/embeddings`.
pub(super) async fn embeddings(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match embeddings_inner(&s, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn embeddings_inner(
    s: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    fault_before_answer(API, s.admit(API, headers)?, false).await?;
    let req: EmbeddingRequest = read_json(
        Route::Embeddings,
        s.config.strict,
        body,
        s.config.max_body_bytes,
    )
    .await?;
    // A string, a list of strings, a list of token ids, or a list of token-id lists.
    let inputs: Vec<String> = match &req.input {
        Value::String(t) => vec![t.clone()],
        Value::Array(items) if items.iter().all(Value::is_number) && !items.is_empty() => {
            vec![req.input.to_string()]
        }
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(t) => Ok(t.clone()),
                Value::Array(_) => Ok(i.to_string()),
                _ => Err(()),
            })
            .collect::<Result<_, _>>()
            .map_err(|()| invalid_input())?,
        _ => return Err(invalid_input()),
    };
    if inputs.is_empty() {
        return Err(invalid_input());
    }
    let dims = req.dimensions.unwrap_or(s.config.embedding_dimensions);
    if dims == 0 || dims > 16_384 {
        let mut e = ApiError::bad_request(
            API,
            format!("`dimensions` must be between 1 and 16384, not {dims}"),
        );
        e.param = Some("dimensions".into());
        return Err(e);
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            let mut e = ApiError::bad_request(
                API,
                format!("`encoding_format` must be `float` or `base64`, not `{other}`"),
            );
            e.param = Some("encoding_format".into());
            return Err(e);
        }
    };
    let tokens: u32 = inputs.iter().map(|t| count_tokens(t)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = embedding(text, dims);
            let e = if base64 {
                json!(embedding_base64(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": e})
        })
        .collect();
    Ok(axum::Json(json!({
        "object": "list", "data": data, "model": req.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
    .into_response())
}

fn invalid_input() -> ApiError {
    let mut e = ApiError::bad_request(
        API,
        "`input` must be a string, a list of strings, or token ids (a list of integers or of lists)",
    );
    e.param = Some("input".into());
    e
}
