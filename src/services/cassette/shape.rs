//! A plain request replayed from a streamed recording, or the reverse: the stream's frames
//! added up to the document the API answers without `stream`, and a document cut into the
//! frames the API would have streamed — for chat completions, messages and responses.

use serde_json::{Map, Value, json};

use super::Frame;

/// The `data:` payload and `event:` name of a frame.
fn parse(frame: &str) -> (Option<&str>, Option<Value>) {
    let mut event = None;
    let mut data = None;
    for line in frame.lines() {
        if let Some(e) = line.strip_prefix("event:") {
            event = Some(e.trim());
        } else if let Some(d) = line.strip_prefix("data:") {
            data = serde_json::from_str(d.trim()).ok();
        }
    }
    (event, data)
}

/// The document a stream on `route` adds up to.
pub(crate) fn assemble(route: &str, frames: &[Frame]) -> Result<Value, String> {
    let payloads = frames.iter().filter_map(|f| parse(&f.data).1);
    match route {
        "/v1/chat/completions" => Ok(assemble_chat(payloads)),
        "/v1/messages" => Ok(assemble_message(payloads)),
        "/v1/responses" => payloads
            .filter(|p| p["type"] == "response.completed")
            .map(|p| p["response"].clone())
            .next_back()
            .ok_or_else(|| "the recorded stream has no `response.completed` event".to_string()),
        other => Err(format!("`{other}` does not stream")),
    }
}

fn assemble_chat(chunks: impl Iterator<Item = Value>) -> Value {
    let mut head = Map::new();
    let mut content: Option<String> = None;
    let mut refusal: Option<String> = None;
    let mut tools: Vec<Value> = Vec::new();
    let mut finish = Value::Null;
    let mut usage = None;
    for c in chunks {
        if head.is_empty() {
            for k in [
                "id",
                "created",
                "model",
                "system_fingerprint",
                "service_tier",
            ] {
                if let Some(v) = c.get(k) {
                    head.insert(k.into(), v.clone());
                }
            }
        }
        if let Some(u) = c.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        let Some(choice) = c["choices"].get(0) else {
            continue;
        };
        let delta = &choice["delta"];
        if let Some(t) = delta["content"].as_str() {
            content.get_or_insert_with(String::new).push_str(t);
        }
        if let Some(t) = delta["refusal"].as_str() {
            refusal.get_or_insert_with(String::new).push_str(t);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let i = call["index"].as_u64().unwrap_or(0) as usize;
            while tools.len() <= i {
                tools.push(json!({"id": "", "type": "function", "function": {"name": "", "arguments": ""}}));
            }
            let t = &mut tools[i];
            if let Some(id) = call["id"].as_str() {
                t["id"] = id.into();
            }
            if let Some(n) = call["function"]["name"].as_str() {
                let name = format!("{}{n}", t["function"]["name"].as_str().unwrap_or(""));
                t["function"]["name"] = name.into();
            }
            if let Some(a) = call["function"]["arguments"].as_str() {
                let args = format!("{}{a}", t["function"]["arguments"].as_str().unwrap_or(""));
                t["function"]["arguments"] = args.into();
            }
        }
        if !choice["finish_reason"].is_null() {
            finish = choice["finish_reason"].clone();
        }
    }
    // The first chunk's empty text is not content when the answer is tool calls.
    if !tools.is_empty() && content.as_deref() == Some("") {
        content = None;
    }
    let mut message = json!({"role": "assistant", "content": content, "refusal": refusal});
    if !tools.is_empty() {
        message["tool_calls"] = Value::Array(tools);
    }
    let mut doc = Map::new();
    doc.insert("id".into(), head.remove("id").unwrap_or(Value::Null));
    doc.insert("object".into(), "chat.completion".into());
    doc.extend(head);
    doc.insert(
        "choices".into(),
        json!([{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}]),
    );
    if let Some(u) = usage {
        doc.insert("usage".into(), u);
    }
    Value::Object(doc)
}

fn assemble_message(events: impl Iterator<Item = Value>) -> Value {
    let mut message = json!({});
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial: Vec<String> = Vec::new();
    for e in events {
        match e["type"].as_str().unwrap_or("") {
            "message_start" => message = e["message"].clone(),
            "content_block_start" => {
                blocks.push(e["content_block"].clone());
                partial.push(String::new());
            }
            "content_block_delta" => {
                let (Some(b), Some(p)) = (blocks.last_mut(), partial.last_mut()) else {
                    continue;
                };
                let d = &e["delta"];
                match d["type"].as_str().unwrap_or("") {
                    "text_delta" => {
                        let text = format!(
                            "{}{}",
                            b["text"].as_str().unwrap_or(""),
                            d["text"].as_str().unwrap_or("")
                        );
                        b["text"] = text.into();
                    }
                    "thinking_delta" => {
                        let text = format!(
                            "{}{}",
                            b["thinking"].as_str().unwrap_or(""),
                            d["thinking"].as_str().unwrap_or("")
                        );
                        b["thinking"] = text.into();
                    }
                    "input_json_delta" => p.push_str(d["partial_json"].as_str().unwrap_or("")),
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let (Some(b), Some(p)) = (blocks.last_mut(), partial.last())
                    && !p.is_empty()
                {
                    b["input"] = serde_json::from_str(p).unwrap_or_else(|_| json!({}));
                }
            }
            "message_delta" => {
                for (k, v) in e["delta"].as_object().into_iter().flatten() {
                    message[k] = v.clone();
                }
                for (k, v) in e["usage"].as_object().into_iter().flatten() {
                    message["usage"][k] = v.clone();
                }
            }
            _ => {}
        }
    }
    message["content"] = Value::Array(blocks);
    message
}

/// The frames the API streams for `doc` on `route` (`include_usage`: OpenAI's
/// `stream_options.include_usage`).
pub(crate) fn split(route: &str, doc: &Value, include_usage: bool) -> Result<Vec<String>, String> {
    let data = |v: &Value| format!("data: {v}");
    let event = |v: &Value| format!("event: {}\ndata: {v}", v["type"].as_str().unwrap_or(""));
    match route {
        "/v1/chat/completions" => {
            let mut out = Vec::new();
            let base = |choices: Value| {
                let mut c = json!({
                    "id": doc["id"], "object": "chat.completion.chunk",
                    "created": doc["created"], "model": doc["model"], "choices": choices,
                });
                if let Some(f) = doc.get("system_fingerprint") {
                    c["system_fingerprint"] = f.clone();
                }
                c
            };
            let choice = &doc["choices"][0];
            let message = &choice["message"];
            let delta = |d: Value, finish: Value| json!([{"index": 0, "delta": d, "logprobs": null, "finish_reason": finish}]);
            out.push(data(&base(delta(
                json!({"role": "assistant", "content": "", "refusal": null}),
                Value::Null,
            ))));
            if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
                out.push(data(&base(delta(json!({"content": text}), Value::Null))));
            }
            for (i, call) in message["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let d = json!({"tool_calls": [{
                    "index": i, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]},
                }]});
                out.push(data(&base(delta(d, Value::Null))));
            }
            out.push(data(&base(delta(
                json!({}),
                choice["finish_reason"].clone(),
            ))));
            if include_usage {
                let mut last = base(json!([]));
                last["usage"] = doc["usage"].clone();
                out.push(data(&last));
            }
            out.push("data: [DONE]".to_string());
            Ok(out)
        }
        "/v1/messages" => {
            let mut start = doc.clone();
            start["content"] = json!([]);
            start["stop_reason"] = Value::Null;
            start["stop_sequence"] = Value::Null;
            let mut out = vec![event(&json!({"type": "message_start", "message": start}))];
            for (i, block) in doc["content"].as_array().into_iter().flatten().enumerate() {
                let mut empty = block.clone();
                let delta = match block["type"].as_str().unwrap_or("") {
                    "text" => {
                        empty["text"] = "".into();
                        json!({"type": "text_delta", "text": block["text"]})
                    }
                    "tool_use" => {
                        empty["input"] = json!({});
                        json!({"type": "input_json_delta", "partial_json": block["input"].to_string()})
                    }
                    "thinking" => {
                        empty["thinking"] = "".into();
                        json!({"type": "thinking_delta", "thinking": block["thinking"]})
                    }
                    _ => Value::Null,
                };
                out.push(event(
                    &json!({"type": "content_block_start", "index": i, "content_block": empty}),
                ));
                if !delta.is_null() {
                    out.push(event(
                        &json!({"type": "content_block_delta", "index": i, "delta": delta}),
                    ));
                }
                out.push(event(&json!({"type": "content_block_stop", "index": i})));
            }
            out.push(event(&json!({
                "type": "message_delta",
                "delta": {"stop_reason": doc["stop_reason"], "stop_sequence": doc["stop_sequence"]},
                "usage": {"output_tokens": doc["usage"]["output_tokens"]},
            })));
            out.push(event(&json!({"type": "message_stop"})));
            Ok(out)
        }
        "/v1/responses" => {
            let mut created = doc.clone();
            created["status"] = "in_progress".into();
            created["output"] = json!([]);
            Ok(vec![
                event(
                    &json!({"type": "response.created", "sequence_number": 0, "response": created}),
                ),
                event(
                    &json!({"type": "response.completed", "sequence_number": 1, "response": doc}),
                ),
            ])
        }
        other => Err(format!("`{other}` does not stream")),
    }
}
