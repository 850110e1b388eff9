//! OpenAI chat completions ⇄ Anthropic messages, both ways, streaming included: a request
//! in one API's shape routed to a provider of the other goes out translated, and its
//! answer (a document, an event stream, or an error) comes back in the caller's shape. A
//! parameter with no counterpart is refused by name, never dropped.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::config::Provider;

/// Which way a request is translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// An OpenAI chat request to an Anthropic provider.
    ChatToMessages,
    /// An Anthropic messages request to an OpenAI provider.
    MessagesToChat,
}

impl Direction {
    /// The path the upstream is asked on.
    pub(super) fn upstream_path(self) -> &'static str {
        match self {
            Direction::ChatToMessages => "/v1/messages",
            Direction::MessagesToChat => "/v1/chat/completions",
        }
    }
}

/// How a request on `route` reaches a `provider`: as it is (`None`), translated, or not at
/// all (why).
pub(super) fn direction(route: &str, provider: Provider) -> Result<Option<Direction>, String> {
    match (route, provider) {
        (_, Provider::OpenaiCompatible) => Ok(None),
        ("/v1/chat/completions", Provider::Anthropic) => Ok(Some(Direction::ChatToMessages)),
        ("/v1/messages", Provider::Openai) => Ok(Some(Direction::MessagesToChat)),
        ("/v1/embeddings" | "/v1/responses", Provider::Anthropic) => Err(format!(
            "`{route}` has no counterpart in Anthropic's API: route this model to an OpenAI or OpenAI-compatible upstream"
        )),
        ("/v1/messages/count_tokens", Provider::Openai) => Err(
            "`/v1/messages/count_tokens` has no counterpart in OpenAI's API: route this model to an Anthropic or OpenAI-compatible upstream".into(),
        ),
        _ => Ok(None),
    }
}

/// A parameter with no counterpart.
fn refuse(param: &str, provider: &str) -> String {
    format!("parameter `{param}` has no counterpart in {provider}'s API")
}

/// A request translated for the upstream.
#[derive(Debug)]
pub(super) struct Translated {
    /// The body to send.
    pub body: Vec<u8>,
    /// The caller asked for usage at the end of its stream (OpenAI's `stream_options`).
    pub include_usage: bool,
}

/// The request translated for the upstream; the message is a 400's, naming the parameter.
pub(super) fn request(dir: Direction, body: &[u8]) -> Result<Translated, String> {
    let malformed = |e: serde_json::Error| format!("malformed JSON in the request body: {e}");
    match dir {
        Direction::ChatToMessages => {
            let members: Members = serde_json::from_slice(body).map_err(malformed)?;
            chat_to_messages(&members)
        }
        Direction::MessagesToChat => {
            let v: Value = serde_json::from_slice(body).map_err(malformed)?;
            let Some(obj) = v.as_object() else {
                return Err("the request body must be a JSON object".into());
            };
            let out = messages_to_chat(obj)?;
            Ok(Translated {
                body: serde_json::to_vec(&out).map_err(|e| e.to_string())?,
                include_usage: false,
            })
        }
    }
}

// ---- OpenAI chat → Anthropic messages -------------------------------------------------
//
// On every request routed to an Anthropic provider, so read and written without a JSON
// tree: the body's members stay unparsed text until a rule needs them, the messages are
// typed, and what passes through unchanged (the model, a message's text) is copied as it
// came.

/// A JSON object's members, in order, their values unparsed.
#[derive(Debug)]
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some((key, value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((key.0, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A member's name, borrowed unless it holds an escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Borrowing<'a>(#[serde(borrow)] Cow<'a, str>);
        Borrowing::deserialize(d).map(|b| Key(b.0))
    }
}

/// An OpenAI chat message, as far as translating it needs.
#[derive(Debug, Deserialize)]
struct ChatMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ChatToolCall<'a>>>,
    #[serde(borrow)]
    tool_call_id: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct ChatToolCall<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    function: ChatFunction<'a>,
}

/// An Anthropic message, as written.
#[derive(Debug, Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: Vec<OutBlock<'a>>,
}

/// An Anthropic content block, as written.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutBlock<'a> {
    /// Text, copied as the caller wrote it (a JSON string).
    Text { text: &'a RawValue },
    ToolUse {
        id: Option<&'a RawValue>,
        name: Option<&'a RawValue>,
        input: Box<RawValue>,
    },
    ToolResult {
        tool_use_id: Option<&'a RawValue>,
        content: Vec<OutBlock<'a>>,
    },
    /// A block built from a content part (an image).
    #[serde(untagged)]
    Built(Value),
}

/// An Anthropic request member, as written.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum OutValue<'a> {
    Raw(&'a RawValue),
    Json(Value),
    Blocks(Vec<OutBlock<'a>>),
    Messages(Vec<OutMessage<'a>>),
}

/// An object's members, written in order.
struct OutObject<'a>(Vec<(&'static str, OutValue<'a>)>);

impl Serialize for OutObject<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'a> OutObject<'a> {
    fn get_mut(&mut self, key: &str) -> Option<&mut OutValue<'a>> {
        self.0.iter_mut().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| *k == key)
    }
}

fn parse<'a, T: Deserialize<'a>>(name: &str, raw: &'a RawValue) -> Result<T, String> {
    serde_json::from_str(raw.get()).map_err(|e| format!("`{name}` is not what the API takes: {e}"))
}

fn chat_to_messages(req: &Members) -> Result<Translated, String> {
    let mut out = OutObject(Vec::with_capacity(req.0.len() + 2));
    let mut system: Vec<OutBlock> = Vec::new();
    let mut messages: Vec<OutMessage> = Vec::new();
    let mut include_usage = false;
    let mut parallel = true;
    for (key, value) in req.0.iter().map(|(k, v)| (k, *v)) {
        match key.as_ref() {
            "model" => out.0.push(("model", OutValue::Raw(value))),
            "temperature" => out.0.push(("temperature", OutValue::Raw(value))),
            "top_p" => out.0.push(("top_p", OutValue::Raw(value))),
            "stream" => out.0.push(("stream", OutValue::Raw(value))),
            "messages" => {
                let list: Vec<ChatMessage> = parse("messages", value)?;
                for m in &list {
                    chat_message(m, &mut system, &mut messages)?;
                }
            }
            "max_tokens" | "max_completion_tokens" => {
                out.0.push(("max_tokens", OutValue::Raw(value)));
            }
            "stop" => {
                let stops = match parse::<Value>("stop", value)? {
                    Value::String(s) => vec![Value::String(s)],
                    Value::Array(a) => a,
                    Value::Null => Vec::new(),
                    _ => return Err("`stop` must be a string or a list".into()),
                };
                out.0
                    .push(("stop_sequences", OutValue::Json(Value::Array(stops))));
            }
            "tools" => {
                let tools: Vec<Value> = parse("tools", value)?;
                let tools: Result<Vec<Value>, String> = tools.iter().map(chat_tool).collect();
                out.0.push(("tools", OutValue::Json(Value::Array(tools?))));
            }
            "tool_choice" => {
                let choice = chat_tool_choice(&parse("tool_choice", value)?)?;
                out.0.push(("tool_choice", OutValue::Json(choice)));
            }
            "parallel_tool_calls" => parallel = value.get() != "false",
            "response_format" => {
                let format: Value = parse("response_format", value)?;
                if let Some(config) = response_format(&format)? {
                    out.0.push(("output_config", OutValue::Json(config)));
                }
            }
            "user" => out
                .0
                .push(("metadata", OutValue::Json(json!({"user_id": value})))),
            "stream_options" => {
                let options: Value = parse("stream_options", value)?;
                include_usage = options.get("include_usage") == Some(&Value::Bool(true));
            }
            "metadata" | "store" => {}
            "n" if value.get() == "1" => {}
            other => return Err(refuse(other, "Anthropic")),
        }
    }
    if !parallel {
        match out.get_mut("tool_choice") {
            Some(OutValue::Json(choice)) => choice["disable_parallel_tool_use"] = json!(true),
            _ => out.0.push((
                "tool_choice",
                OutValue::Json(json!({"type": "auto", "disable_parallel_tool_use": true})),
            )),
        }
    }
    if !system.is_empty() {
        out.0.push(("system", OutValue::Blocks(system)));
    }
    out.0.push(("messages", OutValue::Messages(messages)));
    // Anthropic requires a budget; OpenAI's default is the model's whole window.
    if !out.has("max_tokens") {
        out.0.push(("max_tokens", OutValue::Json(json!(4096))));
    }
    Ok(Translated {
        body: serde_json::to_vec(&out).map_err(|e| e.to_string())?,
        include_usage,
    })
}

/// `response_format` as Anthropic's `output_config`, if it asks for a format.
fn response_format(format: &Value) -> Result<Option<Value>, String> {
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = format
                .pointer("/json_schema/schema")
                .ok_or("`response_format.json_schema.schema` is required")?;
            Ok(Some(
                json!({"format": {"type": "json_schema", "schema": schema}}),
            ))
        }
        Some("text") | None => Ok(None),
        Some(other) => Err(format!(
            "`response_format: {other}` has no counterpart in Anthropic's API (use `json_schema`)"
        )),
    }
}

/// One OpenAI chat message, added to Anthropic's `system` or `messages`. Consecutive tool
/// results become one user message of `tool_result` blocks.
fn chat_message<'a>(
    m: &ChatMessage<'a>,
    system: &mut Vec<OutBlock<'a>>,
    messages: &mut Vec<OutMessage<'a>>,
) -> Result<(), String> {
    match m.role.as_ref() {
        "system" | "developer" => {
            for block in chat_content(m.content)? {
                if !matches!(block, OutBlock::Text { .. }) {
                    return Err("a system message holds text only".into());
                }
                system.push(block);
            }
        }
        "user" => messages.push(OutMessage {
            role: "user",
            content: chat_content(m.content)?,
        }),
        "assistant" => {
            let mut blocks = chat_content(m.content)?;
            for call in m.tool_calls.iter().flatten() {
                let input = RawValue::from_string(call.function.arguments.to_string())
                    .map_err(|e| format!("a tool call's `arguments` is not JSON: {e}"))?;
                blocks.push(OutBlock::ToolUse {
                    id: call.id,
                    name: call.function.name,
                    input,
                });
            }
            messages.push(OutMessage {
                role: "assistant",
                content: blocks,
            });
        }
        "tool" => {
            let result = OutBlock::ToolResult {
                tool_use_id: m.tool_call_id,
                content: chat_content(m.content)?,
            };
            match messages.last_mut() {
                Some(last)
                    if last.role == "user"
                        && last
                            .content
                            .iter()
                            .all(|b| matches!(b, OutBlock::ToolResult { .. })) =>
                {
                    last.content.push(result);
                }
                _ => messages.push(OutMessage {
                    role: "user",
                    content: vec![result],
                }),
            }
        }
        other => {
            return Err(format!(
                "a message with role `{other}` has no counterpart in Anthropic's API"
            ));
        }
    }
    Ok(())
}

/// OpenAI content (a string or parts) as Anthropic blocks.
fn chat_content(content: Option<&RawValue>) -> Result<Vec<OutBlock<'_>>, String> {
    let Some(content) = content else {
        return Ok(Vec::new());
    };
    match content.get().as_bytes().first() {
        Some(b'"') => Ok(vec![OutBlock::Text { text: content }]),
        Some(b'n') => Ok(Vec::new()),
        Some(b'[') => {
            let parts: Vec<&RawValue> = parse("content", content)?;
            parts
                .into_iter()
                .map(|part| match parse::<TextPart>("content", part) {
                    Ok(TextPart { kind, text }) if kind == "text" => Ok(OutBlock::Text { text }),
                    _ => chat_part(&parse("content", part)?).map(OutBlock::Built),
                })
                .collect()
        }
        _ => Err("a message's `content` must be a string or a list of parts".into()),
    }
}

/// A text part (`{type: text, text}`), its text as written.
#[derive(Debug, Deserialize)]
struct TextPart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: &'a RawValue,
}

fn chat_part(part: &Value) -> Result<Value, String> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({"type": "text", "text": part["text"]})),
        Some("image_url") => {
            let url = part
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .ok_or("an `image_url` part needs `image_url.url`")?;
            match url
                .strip_prefix("data:")
                .and_then(|d| d.split_once(";base64,"))
            {
                Some((media_type, data)) => Ok(json!({"type": "image",
                    "source": {"type": "base64", "media_type": media_type, "data": data}})),
                None => Ok(json!({"type": "image", "source": {"type": "url", "url": url}})),
            }
        }
        Some(other) => Err(format!(
            "a content part of type `{other}` has no counterpart in Anthropic's API"
        )),
        None => Err("a content part needs a `type`".into()),
    }
}

fn chat_tool(tool: &Value) -> Result<Value, String> {
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return Err("only `function` tools have a counterpart in Anthropic's API".into());
    }
    let f = &tool["function"];
    let mut out = json!({"name": f["name"], "input_schema": f.get("parameters").cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}))});
    if let Some(d) = f.get("description") {
        out["description"] = d.clone();
    }
    Ok(out)
}

fn chat_tool_choice(choice: &Value) -> Result<Value, String> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "none" => Ok(json!({"type": "none"})),
            "required" => Ok(json!({"type": "any"})),
            other => Err(format!("`tool_choice: {other}` is not a tool choice")),
        },
        Value::Object(_) => choice
            .pointer("/function/name")
            .map(|name| json!({"type": "tool", "name": name}))
            .ok_or_else(|| "`tool_choice` names no function".to_string()),
        _ => Err("`tool_choice` must be a string or {type: function, function: {name}}".into()),
    }
}

// ---- Anthropic messages → OpenAI chat -------------------------------------------------

fn messages_to_chat(req: &Map<String, Value>) -> Result<Value, String> {
    let mut out = Map::new();
    let mut messages: Vec<Value> = Vec::new();
    if let Some(system) = req.get("system") {
        let text = match system {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => return Err("`system` must be a string or text blocks".into()),
        };
        messages.push(json!({"role": "system", "content": text}));
    }
    for (key, value) in req {
        match key.as_str() {
            "model" | "temperature" | "top_p" => {
                out.insert(key.clone(), value.clone());
            }
            "system" => {}
            "stream" => {
                out.insert("stream".into(), value.clone());
                if value == &json!(true) {
                    out.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            "messages" => {
                let list = value.as_array().ok_or("`messages` must be a list")?;
                for m in list {
                    anthropic_message(m, &mut messages)?;
                }
            }
            "max_tokens" => {
                out.insert("max_completion_tokens".into(), value.clone());
            }
            "stop_sequences" => {
                out.insert("stop".into(), value.clone());
            }
            "tools" => {
                let tools = value.as_array().ok_or("`tools` must be a list")?;
                let tools: Vec<Value> = tools
                    .iter()
                    .map(|t| {
                        let mut f = json!({"name": t["name"], "parameters": t["input_schema"]});
                        if let Some(d) = t.get("description") {
                            f["description"] = d.clone();
                        }
                        json!({"type": "function", "function": f})
                    })
                    .collect();
                out.insert("tools".into(), Value::Array(tools));
            }
            "tool_choice" => {
                let choice = match value.get("type").and_then(Value::as_str) {
                    Some("auto") => json!("auto"),
                    Some("none") => json!("none"),
                    Some("any") => json!("required"),
                    Some("tool") => {
                        json!({"type": "function", "function": {"name": value["name"]}})
                    }
                    _ => return Err("`tool_choice.type` must be auto, any, tool or none".into()),
                };
                if value.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
                    out.insert("parallel_tool_calls".into(), json!(false));
                }
                out.insert("tool_choice".into(), choice);
            }
            "output_config" | "output_format" => {
                let format = if key == "output_config" {
                    &value["format"]
                } else {
                    value
                };
                if format.is_null() {
                    continue;
                }
                if format.get("type").and_then(Value::as_str) != Some("json_schema") {
                    return Err(format!("`{key}` must give a `json_schema` format"));
                }
                out.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema":
                        {"name": "output", "schema": format["schema"], "strict": true}}),
                );
            }
            "metadata" => {
                if let Some(user) = value.get("user_id") {
                    out.insert("user".into(), user.clone());
                }
            }
            other => return Err(refuse(other, "OpenAI")),
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    Ok(Value::Object(out))
}

/// One Anthropic message as OpenAI chat messages: tool results become `tool` messages
/// (before the user's other content), tool uses an assistant's `tool_calls`.
fn anthropic_message(m: &Value, messages: &mut Vec<Value>) -> Result<(), String> {
    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
    let blocks: Vec<Value> = match m.get("content") {
        Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
        Some(Value::Array(b)) => b.clone(),
        _ => return Err("a message's `content` must be a string or a list of blocks".into()),
    };
    let mut parts: Vec<Value> = Vec::new();
    let mut calls: Vec<Value> = Vec::new();
    for b in &blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(json!({"type": "text", "text": b["text"]})),
            Some("image") => {
                let src = &b["source"];
                let url = match src.get("type").and_then(Value::as_str) {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        src["media_type"].as_str().unwrap_or("image/png"),
                        src["data"].as_str().unwrap_or_default()
                    ),
                    Some("url") => src["url"].as_str().unwrap_or_default().to_string(),
                    _ => return Err("an image's `source` must be base64 or a URL".into()),
                };
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("tool_use") => calls.push(json!({"id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()}})),
            Some("tool_result") => {
                let content = match &b["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(inner) => inner
                        .iter()
                        .filter_map(|c| c.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                messages.push(
                    json!({"role": "tool", "tool_call_id": b["tool_use_id"], "content": content}),
                );
            }
            Some(other) => {
                return Err(format!(
                    "a content block of type `{other}` has no counterpart in OpenAI's API"
                ));
            }
            None => return Err("a content block needs a `type`".into()),
        }
    }
    let text_only = parts.iter().all(|p| p["type"] == "text");
    let content = if parts.is_empty() {
        Value::Null
    } else if text_only {
        Value::String(
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    } else {
        Value::Array(parts)
    };
    match role {
        "assistant" => {
            let mut msg = json!({"role": "assistant", "content": content});
            if !calls.is_empty() {
                msg["tool_calls"] = Value::Array(calls);
            }
            messages.push(msg);
        }
        "user" if !content.is_null() => messages.push(json!({"role": "user", "content": content})),
        "user" => {}
        other => {
            return Err(format!(
                "a message with role `{other}` has no counterpart in OpenAI's API"
            ));
        }
    }
    Ok(())
}

// ---- answers ----------------------------------------------------------------------------

/// An answer document translated back into the caller's shape. Read and written through
/// borrowed, typed views (no JSON tree): this runs on every translated answer.
pub(super) fn response(dir: Direction, body: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    match dir {
        Direction::ChatToMessages => serde_json::to_vec(&message_to_completion(
            &serde_json::from_slice(body)?,
            now(),
        )),
        Direction::MessagesToChat => {
            serde_json::to_vec(&completion_to_message(&serde_json::from_slice(body)?))
        }
    }
}

fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The parts of an Anthropic message an OpenAI completion carries.
#[derive(Debug, Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Vec<MessageBlock<'a>>,
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: MessageUsage,
}

#[derive(Debug, Deserialize)]
struct MessageBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct MessageUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

/// An OpenAI chat completion, as written.
#[derive(Debug, Serialize)]
struct Completion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: Option<&'a RawValue>,
    choices: [CompletionChoice<'a>; 1],
    usage: CompletionUsage,
}

#[derive(Debug, Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: CompletionMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
struct CompletionMessage<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<CompletionCall<'a>>,
}

#[derive(Debug, Serialize)]
struct CompletionCall<'a> {
    id: Option<&'a RawValue>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: CompletionFunction<'a>,
}

#[derive(Debug, Serialize)]
struct CompletionFunction<'a> {
    name: Option<&'a RawValue>,
    /// The call's input, as the JSON text OpenAI sends.
    arguments: &'a str,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct CompletionUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

/// An Anthropic message as an OpenAI chat completion.
fn message_to_completion<'a>(m: &'a Message<'a>, created: u64) -> Completion<'a> {
    let text: String = m
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect();
    let tool_calls: Vec<CompletionCall<'a>> = m
        .content
        .iter()
        .filter(|b| b.kind == "tool_use")
        .map(|b| CompletionCall {
            id: b.id,
            kind: "function",
            function: CompletionFunction {
                name: b.name,
                arguments: b.input.map_or("{}", RawValue::get),
            },
        })
        .collect();
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
    let (input, output) = (m.usage.input_tokens, m.usage.output_tokens);
    Completion {
        id: format!(
            "chatcmpl-{}",
            if m.id.is_empty() { "translated" } else { &m.id }
        ),
        object: "chat.completion",
        created,
        model: m.model,
        choices: [CompletionChoice {
            index: 0,
            message: CompletionMessage {
                role: "assistant",
                content,
                refusal: None,
                tool_calls,
            },
            logprobs: None,
            finish_reason: finish_reason(m.stop_reason.as_deref().unwrap_or("end_turn")),
        }],
        usage: CompletionUsage {
            prompt_tokens: input,
            completion_tokens: output,
            total_tokens: input + output,
        },
    }
}

/// The parts of an OpenAI chat completion an Anthropic message carries.
#[derive(Debug, Deserialize)]
struct ChatCompletion<'a> {
    #[serde(borrow, default)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Vec<ChatChoice<'a>>,
    #[serde(default)]
    usage: CompletionUsage,
}

#[derive(Debug, Deserialize)]
struct ChatChoice<'a> {
    #[serde(borrow)]
    message: ChatAnswer<'a>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct ChatAnswer<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Vec<ChatCall<'a>>,
}

#[derive(Debug, Deserialize)]
struct ChatCall<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    function: ChatFunction<'a>,
}

#[derive(Debug, Deserialize)]
struct ChatFunction<'a> {
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    arguments: Cow<'a, str>,
}

/// An Anthropic message, as written.
#[derive(Debug, Serialize)]
struct AnthropicAnswer<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: Option<&'a RawValue>,
    content: Vec<AnswerBlock<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<()>,
    usage: MessageUsage,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AnswerBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: Option<&'a RawValue>,
        name: Option<&'a RawValue>,
        input: ToolInput,
    },
}

/// A tool call's input: the arguments as they were, or `{}`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ToolInput {
    Raw(Box<RawValue>),
    Empty {},
}

/// An OpenAI chat completion as an Anthropic message.
fn completion_to_message<'a>(c: &'a ChatCompletion<'a>) -> AnthropicAnswer<'a> {
    let choice = c.choices.first();
    let mut content = Vec::new();
    if let Some(text) = choice
        .and_then(|ch| ch.message.content.as_deref())
        .filter(|t| !t.is_empty())
    {
        content.push(AnswerBlock::Text { text });
    }
    for call in choice
        .map(|ch| ch.message.tool_calls.as_slice())
        .unwrap_or_default()
    {
        // The arguments are JSON text; a model that wrote something else gets `{}`.
        let input = RawValue::from_string(call.function.arguments.to_string())
            .map_or(ToolInput::Empty {}, ToolInput::Raw);
        content.push(AnswerBlock::ToolUse {
            id: call.id,
            name: call.function.name,
            input,
        });
    }
    let finish = choice.and_then(|ch| ch.finish_reason.as_deref());
    AnthropicAnswer {
        id: format!("msg_{}", if c.id.is_empty() { "translated" } else { &c.id }),
        kind: "message",
        role: "assistant",
        model: c.model,
        content,
        stop_reason: stop_reason(finish.unwrap_or("stop")),
        stop_sequence: None,
        usage: MessageUsage {
            input_tokens: c.usage.prompt_tokens,
            output_tokens: c.usage.completion_tokens,
        },
    }
}

/// An upstream error document in the caller's shape (its message kept).
pub(super) fn error(dir: Direction, status: u16, body: &Value) -> Value {
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("the upstream answered an error")
        .to_string();
    match dir {
        // The caller speaks OpenAI.
        Direction::ChatToMessages => crate::services::api_error::ApiError::new(
            crate::services::api_error::Api::OpenAi,
            status,
            message,
        )
        .body(),
        Direction::MessagesToChat => crate::services::api_error::ApiError::new(
            crate::services::api_error::Api::Anthropic,
            status,
            message,
        )
        .body(),
    }
}

// ---- streams ----------------------------------------------------------------------------

/// Turns the upstream's SSE events into the caller's, event by event.
#[derive(Debug)]
pub(super) struct StreamTranslator {
    dir: Direction,
    /// Bytes of an event not yet complete.
    pending: Vec<u8>,
    /// OpenAI out: the completion id, model and creation time of every chunk.
    id: String,
    model: Value,
    created: u64,
    /// OpenAI out: the index of each tool_use block, by content-block index.
    tool_index: Vec<(u64, usize)>,
    include_usage: bool,
    input_tokens: u64,
    /// Anthropic out: whether `message_start` went out, the open block and its kind.
    started: bool,
    open_block: Option<(usize, &'static str)>,
    next_block: usize,
    /// Anthropic out: the stop reason once known, and whether the end went out.
    stop: Option<&'static str>,
    ended: bool,
}

impl StreamTranslator {
    pub(super) fn new(dir: Direction, include_usage: bool) -> StreamTranslator {
        StreamTranslator {
            dir,
            pending: Vec::new(),
            id: String::new(),
            model: Value::Null,
            created: now(),
            tool_index: Vec::new(),
            include_usage,
            input_tokens: 0,
            started: false,
            open_block: None,
            next_block: 0,
            stop: None,
            ended: false,
        }
    }

    /// Feeds upstream bytes; returns the caller's frames they complete.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = find_event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end).collect();
            let data: String = String::from_utf8_lossy(&event)
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            if !data.is_empty() {
                self.event(&data, &mut out);
            }
        }
        out
    }

    /// At the upstream's end: whatever the caller still needs to see its stream end.
    pub(super) fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.dir == Direction::MessagesToChat && !self.ended {
            self.end_message(None, &mut out);
        }
        out
    }

    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        match self.dir {
            Direction::ChatToMessages => self.anthropic_event(data, out),
            Direction::MessagesToChat => self.openai_chunk(data, out),
        }
    }

    /// Anthropic event in, OpenAI chunks out.
    fn anthropic_event(&mut self, data: &str, out: &mut Vec<u8>) {
        let Ok(e) = serde_json::from_str::<Value>(data) else {
            return;
        };
        match e["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let m = &e["message"];
                self.id = format!("chatcmpl-{}", m["id"].as_str().unwrap_or("translated"));
                self.model = m["model"].clone();
                self.input_tokens = m
                    .pointer("/usage/input_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                self.chunk(
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                    out,
                );
            }
            "content_block_start" => {
                let b = &e["content_block"];
                if b["type"] == "tool_use" {
                    let index = self.tool_index.len();
                    self.tool_index
                        .push((e["index"].as_u64().unwrap_or(0), index));
                    self.chunk(
                        json!({"tool_calls": [{"index": index, "id": b["id"], "type": "function",
                            "function": {"name": b["name"], "arguments": ""}}]}),
                        Value::Null,
                        out,
                    );
                }
            }
            "content_block_delta" => {
                let d = &e["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        self.chunk(json!({"content": d["text"]}), Value::Null, out)
                    }
                    Some("input_json_delta") => {
                        let block = e["index"].as_u64().unwrap_or(0);
                        let index = self
                            .tool_index
                            .iter()
                            .find(|(b, _)| *b == block)
                            .map_or(0, |(_, i)| *i);
                        self.chunk(
                            json!({"tool_calls": [{"index": index, "function": {"arguments": d["partial_json"]}}]}),
                            Value::Null,
                            out,
                        );
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                let reason = finish_reason(
                    e.pointer("/delta/stop_reason")
                        .and_then(Value::as_str)
                        .unwrap_or("end_turn"),
                );
                self.chunk(json!({}), json!(reason), out);
                if self.include_usage {
                    let output = e
                        .pointer("/usage/output_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let input = e
                        .pointer("/usage/input_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(self.input_tokens);
                    let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [],
                        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}});
                    push_data(out, &chunk);
                }
            }
            "message_stop" => out.extend_from_slice(b"data: [DONE]\n\n"),
            "error" => {
                let body = json!({"error": {"message": e.pointer("/error/message").cloned().unwrap_or(json!("upstream error")),
                    "type": e.pointer("/error/type").cloned().unwrap_or(json!("api_error"))}});
                push_data(out, &body);
            }
            _ => {}
        }
    }

    fn chunk(&self, delta: Value, finish: Value, out: &mut Vec<u8>) {
        let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        push_data(out, &chunk);
    }

    /// OpenAI chunk in, Anthropic events out.
    fn openai_chunk(&mut self, data: &str, out: &mut Vec<u8>) {
        if data.trim() == "[DONE]" {
            if !self.ended {
                self.end_message(None, out);
            }
            return;
        }
        let Ok(c) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(err) = c.get("error") {
            push_event(
                out,
                "error",
                &json!({"type": "error", "error": {"type": "api_error", "message": err["message"]}}),
            );
            return;
        }
        if !self.started {
            self.started = true;
            let m = json!({"type": "message_start", "message": {
                "id": format!("msg_{}", c["id"].as_str().unwrap_or("translated")),
                "type": "message", "role": "assistant", "model": c["model"], "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}});
            push_event(out, "message_start", &m);
        }
        let choice = &c["choices"][0];
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = self.block(out, "text", || json!({"type": "text", "text": ""}));
            push_event(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": text}}),
            );
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            if let Some(id) = call.get("id").filter(|v| !v.is_null()) {
                self.close_block(out);
                let name = call
                    .pointer("/function/name")
                    .cloned()
                    .unwrap_or(Value::Null);
                let id = id.clone();
                self.block(
                    out,
                    "tool_use",
                    || json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                );
            }
            if let Some(args) = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
                && let Some((index, _)) = self.open_block
            {
                push_event(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": args}}),
                );
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.stop = Some(stop_reason(reason));
        }
        if let Some(usage) = c.get("usage").filter(|u| !u.is_null()) {
            self.end_message(Some(usage), out);
        }
    }

    /// The open block of `kind`, opened (after closing another) when needed; its index.
    fn block(
        &mut self,
        out: &mut Vec<u8>,
        kind: &'static str,
        start: impl FnOnce() -> Value,
    ) -> usize {
        if let Some((index, open)) = self.open_block
            && open == kind
            && kind == "text"
        {
            return index;
        }
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        push_event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start()}),
        );
        self.open_block = Some((index, kind));
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open_block.take() {
            push_event(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    fn end_message(&mut self, usage: Option<&Value>, out: &mut Vec<u8>) {
        if !self.started {
            return;
        }
        self.ended = true;
        self.close_block(out);
        let input = usage.and_then(|u| u["prompt_tokens"].as_u64()).unwrap_or(0);
        let output = usage
            .and_then(|u| u["completion_tokens"].as_u64())
            .unwrap_or(0);
        push_event(
            out,
            "message_delta",
            &json!({"type": "message_delta",
            "delta": {"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null},
            "usage": {"input_tokens": input, "output_tokens": output}}),
        );
        push_event(out, "message_stop", &json!({"type": "message_stop"}));
    }
}

/// The end of the first complete SSE event in `b` (after its blank line).
fn find_event_end(b: &[u8]) -> Option<usize> {
    let lf = memchr::memmem::find(b, b"\n\n").map(|i| i + 2);
    let crlf = memchr::memmem::find(b, b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

fn push_data(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

fn push_event(out: &mut Vec<u8>, name: &str, v: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    push_data(out, v);
}

/// An upstream event stream, translated as it passes.
pub(super) struct TranslatedStream<S> {
    inner: S,
    translator: StreamTranslator,
    ended: bool,
}

impl<S> TranslatedStream<S> {
    pub(super) fn new(inner: S, translator: StreamTranslator) -> TranslatedStream<S> {
        TranslatedStream {
            inner,
            translator,
            ended: false,
        }
    }
}

impl<S, E> futures::Stream for TranslatedStream<S>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
{
    type Item = Result<bytes::Bytes, E>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            match std::pin::Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let out = self.translator.feed(&chunk);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(bytes::Bytes::from(out))));
                    }
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    let out = self.translator.finish();
                    return Poll::Ready((!out.is_empty()).then(|| Ok(bytes::Bytes::from(out))));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translated(dir: Direction, body: &Value) -> Result<Value, String> {
        let out = request(dir, body.to_string().as_bytes())?;
        Ok(serde_json::from_slice(&out.body).expect("json"))
    }

    fn answer(dir: Direction, body: Value) -> Value {
        let out = response(dir, body.to_string().as_bytes()).expect("translated");
        serde_json::from_slice(&out).expect("json")
    }

    #[test]
    fn answers_come_back_in_the_callers_shape() {
        let message = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Let me \"look\"."},
                {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 7, "output_tokens": 3}});
        let c = answer(Direction::ChatToMessages, message);
        assert_eq!(c["id"], "chatcmpl-msg_1");
        assert_eq!(c["object"], "chat.completion");
        assert_eq!(c["model"], "claude-x");
        let choice = &c["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me \"look\".");
        assert_eq!(choice["message"]["tool_calls"][0]["id"], "t1");
        let args = choice["message"]["tool_calls"][0]["function"]["arguments"].as_str();
        let args: Value = serde_json::from_str(args.expect("a string")).expect("json");
        assert_eq!(args, json!({"city": "Paris"}));
        assert_eq!(
            c["usage"],
            json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
        );

        let completion = json!({"id": "c1", "object": "chat.completion", "model": "gpt-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "k1", "type": "function", "function": {"name": "w", "arguments": "{\"a\":1}"}},
                    {"id": "k2", "type": "function", "function": {"name": "w", "arguments": "not json"}}]}}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}});
        let m = answer(Direction::MessagesToChat, completion);
        assert_eq!(m["type"], "message");
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(
            m["content"][0],
            json!({"type": "tool_use", "id": "k1", "name": "w", "input": {"a": 1}})
        );
        assert_eq!(m["content"][1]["input"], json!({}));
        assert_eq!(m["usage"], json!({"input_tokens": 4, "output_tokens": 2}));
        assert!(response(Direction::ChatToMessages, b"<html>").is_err());
    }

    #[test]
    fn chat_requests_become_messages() {
        let req = json!({
            "model": "claude-x", "max_completion_tokens": 50, "stop": "END", "user": "u1",
            "parallel_tool_calls": false, "tool_choice": "required",
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                    {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "one"},
                {"role": "tool", "tool_call_id": "c2", "content": "two"}
            ]
        });
        let out = translated(Direction::ChatToMessages, &req).expect("translated");
        assert_eq!(out["system"][0]["text"], "be brief");
        assert_eq!(out["max_tokens"], 50);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["metadata"]["user_id"], "u1");
        assert_eq!(
            out["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        assert_eq!(out["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(out["output_config"]["format"]["type"], "json_schema");
        let m = out["messages"].as_array().expect("messages");
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[0]["content"][1]["source"]["media_type"], "image/png");
        assert_eq!(m[1]["content"][0]["input"], json!({"a": 1}));
        // Both tool results in one user message.
        assert_eq!(m[2]["content"].as_array().map(Vec::len), Some(2));
        let err = translated(
            Direction::ChatToMessages,
            &json!({"model": "m", "messages": [], "seed": 1}),
        )
        .expect_err("no counterpart");
        assert!(err.contains("`seed`"), "{err}");
        // Text passes as written, escapes and all; the usage request is noticed.
        let req = json!({"model": "c", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "say \"hi\"\n\u{e9}"}]});
        let out = request(Direction::ChatToMessages, req.to_string().as_bytes()).expect("ok");
        assert!(out.include_usage);
        let v: Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(v["messages"][0]["content"][0]["text"], "say \"hi\"\n\u{e9}");
        assert_eq!(v["max_tokens"], 4096);
    }

    #[test]
    fn message_requests_become_chat() {
        let req = json!({
            "model": "gpt-x", "max_tokens": 20, "system": [{"type": "text", "text": "sys"}],
            "stream": true, "tool_choice": {"type": "tool", "name": "f"},
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"},
                    {"type": "text", "text": "and?"}]}
            ]
        });
        let out = translated(Direction::MessagesToChat, &req).expect("translated");
        let m = out["messages"].as_array().expect("messages");
        assert_eq!(m[0], json!({"role": "system", "content": "sys"}));
        assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "t1", "content": "done"})
        );
        assert_eq!(m[4], json!({"role": "user", "content": "and?"}));
        assert_eq!(out["stream_options"]["include_usage"], true);
        assert_eq!(out["max_completion_tokens"], 20);
        assert_eq!(out["tool_choice"]["function"]["name"], "f");
        let err = translated(
            Direction::MessagesToChat,
            &json!({"model": "m", "messages": [], "top_k": 1}),
        )
        .expect_err("no counterpart");
        assert!(err.contains("`top_k`"), "{err}");
    }

    #[test]
    fn streams_translate_however_the_bytes_fall() {
        let anthropic = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"c\",\"usage\":{\"input_tokens\":7}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        for size in [1, 5, 64, anthropic.len()] {
            let mut t = StreamTranslator::new(Direction::ChatToMessages, true);
            let mut out = Vec::new();
            for chunk in anthropic.as_bytes().chunks(size) {
                out.extend(t.feed(chunk));
            }
            out.extend(t.finish());
            let text = String::from_utf8(out).expect("utf-8");
            let chunks: Vec<Value> = text
                .split("\n\n")
                .filter_map(|e| e.strip_prefix("data: "))
                .filter(|d| *d != "[DONE]")
                .map(|d| serde_json::from_str(d).expect("json"))
                .collect();
            let said: String = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(said, "Hello", "chunks of {size}");
            assert_eq!(
                chunks.last().map(|c| c["usage"]["total_tokens"].clone()),
                Some(json!(9))
            );
            assert!(text.ends_with("data: [DONE]\n\n"));
        }
        let openai = concat!(
            "data: {\"id\":\"c1\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
            "data: {\"id\":\"c1\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"id\":\"c1\",\"model\":\"g\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n",
            "data: [DONE]\n\n",
        );
        let mut t = StreamTranslator::new(Direction::MessagesToChat, false);
        let mut out = t.feed(openai.as_bytes());
        out.extend(t.finish());
        let text = String::from_utf8(out).expect("utf-8");
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(text.contains("\"stop_reason\":\"tool_use\""), "{text}");
        assert!(text.contains("\"output_tokens\":4"), "{text}");
    }
}
