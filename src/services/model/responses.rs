//! The OpenAI Responses API: `POST /v1/responses`, plain and streamed (typed events with
//! increasing `sequence_number`, text deltas with `logprobs`, ending `response.completed`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::answer::{Answer, decide, id, now};
use super::body::{content_text, json as read_json};
use super::config::{Fault, Latency};
use super::memo::Parsed;
use super::state::{AppState, Call, fault_before_answer, fault_error};
use super::stream::{Frames, event, token_delay, total_delay};
use super::strict::Route;
use super::text::count_tokens;
use super::turn::Turn;
use crate::services::api_error::{Api, ApiError};

const API: Api = Api::OpenAi;

#[derive(Debug, Deserialize)]
struct ResponsesRequest {
    model: String,
    input: Value,
    instructions: Option<String>,
    stream: Option<bool>,
    max_output_tokens: Option<u32>,
    #[serde(default)]
    metadata: Option<Value>,
    tools: Option<Box<RawValue>>,
    tool_choice: Option<Value>,
    text: Option<Box<RawValue>>,
    parallel_tool_calls: Option<bool>,
}

/// All text of `input`, for its token count: messages' content, tool calls' arguments
/// and tool outputs.
fn input_text(input: &Value) -> String {
    match input {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.get("content").or(i.get("output")).or(i.get("arguments")))
            .map(content_text)
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// `POST /v1/responses`.
pub(super) async fn create(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match inner(&s, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn inner(s: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let fault = s.admit(API, headers)?;
    let req: ResponsesRequest = read_json(
        Route::Responses,
        s.config.strict,
        body,
        s.config.max_body_bytes,
    )
    .await?;
    if !matches!(req.input, Value::String(_) | Value::Array(_)) {
        let mut e = ApiError::bad_request(API, "`input` must be a string or a list of items");
        e.param = Some("input".into());
        return Err(e);
    }
    fault_before_answer(API, fault, req.stream == Some(true)).await?;
    let tools = s.fragment(API, "tools", req.tools.as_deref())?;
    let text = s.fragment(API, "text", req.text.as_deref())?;
    let mut turn = Turn::from_responses(
        &req.input,
        tools.as_ref().map(Parsed::whole),
        req.tool_choice.as_ref(),
        text.as_ref().and_then(|t| t.member("format")),
        req.parallel_tool_calls,
    )?;
    turn.limit = req.max_output_tokens;
    let input_tokens = count_tokens(&input_text(&req.input))
        + req.instructions.as_deref().map_or(0, count_tokens)
        + req.tools.as_ref().map_or(0, |t| count_tokens(t.get()));
    let answer = decide(s, API, &turn)?;
    let output_tokens = answer.tokens();
    s.record_call(
        "/v1/responses",
        Call {
            api: API,
            operation: "chat",
            model: &req.model,
            input: input_tokens,
            output: output_tokens,
            streamed: req.stream == Some(true),
        },
    );
    let resp_id = id("resp_");
    let item_id = id("msg_");
    let created = now();
    let usage = json!({
        "input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens
    });
    let envelope = |status: &str, output: Value, usage: Value| {
        json!({
            "id": resp_id, "object": "response", "created_at": created, "status": status,
            "error": null, "incomplete_details": null, "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens, "model": req.model, "output": output,
            "parallel_tool_calls": true, "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null}, "store": false, "temperature": 1.0,
            "text": text.as_ref().map_or_else(|| json!({"format": {"type": "text"}}), |t| (*t.value).clone()),
            "tool_choice": req.tool_choice.clone().unwrap_or_else(|| json!("auto")),
            "tools": tools.as_ref().map_or_else(|| json!([]), |t| (*t.value).clone()), "top_p": 1.0,
            "truncation": "disabled", "usage": usage, "user": null,
            "metadata": req.metadata.clone().unwrap_or_else(|| json!({}))
        })
    };
    let truncated = matches!(&answer, Answer::Text(r) if r.truncated);
    let final_items = output_items(&answer, &item_id);
    let mut done = envelope(
        if truncated { "incomplete" } else { "completed" },
        Value::Array(final_items.clone()),
        usage,
    );
    if truncated {
        done["incomplete_details"] = json!({"reason": "max_output_tokens"});
    }

    if req.stream != Some(true) {
        let delay = total_delay(&s.config.latency, answer.steps());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        return Ok(axum::Json(done).into_response());
    }

    let in_progress = envelope("in_progress", json!([]), Value::Null);
    let fail_after = fault.and_then(|f| f.after_tokens.map(|n| (n as usize, f)));
    let paced = Stream {
        item_id: &item_id,
        final_items: &final_items,
        in_progress,
        done,
        truncated,
    };
    Ok(paced
        .frames(&answer, &s.config.latency, fail_after)
        .into_response())
}

/// The output items of a finished response: a message, or the function calls.
fn output_items(answer: &Answer, item_id: &str) -> Vec<Value> {
    match answer {
        Answer::Text(r) => vec![json!({
            "id": item_id, "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": r.text(), "annotations": [], "logprobs": []}]
        })],
        Answer::Tools(calls) => calls
            .iter()
            .map(|t| {
                json!({
                    "id": id("fc_"), "type": "function_call", "status": "completed",
                    "call_id": id("call_"), "name": t.name, "arguments": t.arguments_json()
                })
            })
            .collect(),
    }
}

/// What the event sequence of one response is made of.
struct Stream<'a> {
    item_id: &'a str,
    final_items: &'a [Value],
    /// The response as `response.created` shows it.
    in_progress: Value,
    /// The response as `response.completed` shows it.
    done: Value,
    truncated: bool,
}

impl Stream<'_> {
    /// Typed events with increasing `sequence_number`: created, in progress, each output
    /// item with its deltas, completed (or incomplete); a mid-stream fault cuts it after
    /// `fail_after` tokens.
    fn frames(
        self,
        answer: &Answer,
        latency: &Latency,
        fail_after: Option<(usize, &Fault)>,
    ) -> Frames {
        let Stream {
            item_id,
            final_items,
            in_progress,
            done,
            truncated,
        } = self;
        let mut ev = Events::default();
        ev.push("response.created", json!({"response": in_progress}));
        ev.push("response.in_progress", json!({"response": in_progress}));
        let finished = match answer {
            Answer::Text(r) => text_events(&mut ev, item_id, r, latency, fail_after),
            Answer::Tools(calls) => {
                for (index, (t, done_item)) in calls.iter().zip(final_items).enumerate() {
                    let mut item = done_item.clone();
                    item["status"] = json!("in_progress");
                    item["arguments"] = json!("");
                    ev.push(
                        "response.output_item.added",
                        json!({"output_index": index, "item": item}),
                    );
                    let args = t.arguments_json();
                    ev.push_after(
                        token_delay(latency, index),
                        "response.function_call_arguments.delta",
                        json!({"item_id": done_item["id"], "output_index": index, "delta": args}),
                    );
                    ev.push(
                        "response.function_call_arguments.done",
                        json!({"item_id": done_item["id"], "output_index": index, "arguments": args, "name": t.name}),
                    );
                    if index + 1 < calls.len() {
                        ev.push(
                            "response.output_item.done",
                            json!({"output_index": index, "item": done_item}),
                        );
                    }
                }
                true
            }
        };
        if finished {
            let last = final_items.len().saturating_sub(1);
            ev.push(
                "response.output_item.done",
                json!({"output_index": last, "item": final_items[last]}),
            );
            let last_event = if truncated {
                "response.incomplete"
            } else {
                "response.completed"
            };
            ev.push(last_event, json!({"response": done}));
        }
        ev.frames
    }
}

/// Typed stream events, numbered in order.
#[derive(Default)]
struct Events {
    seq: u64,
    frames: Frames,
}

impl Events {
    fn event(&mut self, name: &str, mut body: Value) -> String {
        body["type"] = json!(name);
        body["sequence_number"] = json!(self.seq);
        self.seq += 1;
        event(name, &body)
    }

    fn push(&mut self, name: &str, body: Value) {
        let frame = self.event(name, body);
        self.frames.push(frame);
    }

    fn push_after(&mut self, delay: std::time::Duration, name: &str, body: Value) {
        let frame = self.event(name, body);
        self.frames.push_after(delay, frame);
    }
}

/// The message item of a text answer, its deltas paced token by token; `false` when a
/// mid-stream fault cut it (an `error` event last).
fn text_events(
    ev: &mut Events,
    item_id: &str,
    r: &super::text::Reply,
    latency: &Latency,
    fail_after: Option<(usize, &Fault)>,
) -> bool {
    ev.push(
        "response.output_item.added",
        json!({"output_index": 0, "item": {"id": item_id, "type": "message",
            "status": "in_progress", "role": "assistant", "content": []}}),
    );
    ev.push(
        "response.content_part.added",
        json!({"item_id": item_id, "output_index": 0, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
    );
    for (i, tok) in r.tokens().enumerate() {
        if let Some((n, f)) = fail_after
            && i == n
        {
            if let Some(e) = fault_error(API, f) {
                let body = e.body();
                ev.push_after(
                    token_delay(latency, i),
                    "error",
                    json!({"code": body["error"]["code"], "message": e.message, "param": null}),
                );
            }
            return false;
        }
        ev.push_after(
            token_delay(latency, i),
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                "delta": tok, "logprobs": []}),
        );
    }
    let text = r.text();
    ev.push(
        "response.output_text.done",
        json!({"item_id": item_id, "output_index": 0, "content_index": 0,
            "text": text, "logprobs": []}),
    );
    ev.push(
        "response.content_part.done",
        json!({"item_id": item_id, "output_index": 0, "content_index": 0,
            "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}),
    );
    true
}
