//! `strict: true`: the mock refuses what the real APIs refuse — unknown fields, wrong
//! types, a missing required field, a role the API does not know, a message sequence it
//! rejects — with the real APIs' 400 wording, so a gateway or client bug shows in tests
//! instead of in production.
//!
//! OpenAI names a field `messages[0].content` and answers `{error: {message, type, param,
//! code}}`; Anthropic names it `messages.0.content` and answers `{type: "error", error:
//! {type: "invalid_request_error", message}}`, both as their APIs do.

use serde_json::{Map, Value};

use crate::services::api_error::{Api, ApiError};

/// A route whose body the strict mode checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/responses`
    Responses,
    /// `POST /v1/messages`
    Messages,
    /// `POST /v1/messages/count_tokens`
    CountTokens,
}

impl Route {
    /// The API whose conventions the route follows.
    pub(crate) fn api(self) -> Api {
        match self {
            Route::Chat | Route::Embeddings | Route::Responses => Api::OpenAi,
            Route::Messages | Route::CountTokens => Api::Anthropic,
        }
    }
}

/// What a field must hold.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Int,
    Num,
    Bool,
    Obj,
    Arr,
    /// A string, or an array (of parts, strings or token ids).
    StrOrArr,
    /// A string or an object (`tool_choice`).
    StrOrObj,
    /// A string with one of these values.
    OneOf(&'static [&'static str]),
    /// Anything (checked by the route itself, or free-form).
    Any,
}

/// A field the API knows.
struct Field {
    name: &'static str,
    kind: Kind,
    required: bool,
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

const CHAT: &[Field] = &[
    req("model", Kind::Str),
    req("messages", Kind::Arr),
    opt("audio", Kind::Obj),
    opt("frequency_penalty", Kind::Num),
    opt("function_call", Kind::StrOrObj),
    opt("functions", Kind::Arr),
    opt("logit_bias", Kind::Obj),
    opt("logprobs", Kind::Bool),
    opt("max_completion_tokens", Kind::Int),
    opt("max_tokens", Kind::Int),
    opt("metadata", Kind::Obj),
    opt("modalities", Kind::Arr),
    opt("n", Kind::Int),
    opt("parallel_tool_calls", Kind::Bool),
    opt("prediction", Kind::Obj),
    opt("presence_penalty", Kind::Num),
    opt("prompt_cache_key", Kind::Str),
    opt("prompt_cache_retention", Kind::Str),
    opt("reasoning_effort", Kind::Str),
    opt("response_format", Kind::Obj),
    opt("safety_identifier", Kind::Str),
    opt("seed", Kind::Int),
    opt("service_tier", Kind::Str),
    opt("stop", Kind::StrOrArr),
    opt("store", Kind::Bool),
    opt("stream", Kind::Bool),
    opt("stream_options", Kind::Obj),
    opt("temperature", Kind::Num),
    opt("tool_choice", Kind::StrOrObj),
    opt("tools", Kind::Arr),
    opt("top_logprobs", Kind::Int),
    opt("top_p", Kind::Num),
    opt("user", Kind::Str),
    opt("verbosity", Kind::Str),
    opt("web_search_options", Kind::Obj),
];

const CHAT_ROLES: &[&str] = &[
    "system",
    "assistant",
    "user",
    "function",
    "tool",
    "developer",
];

const CHAT_MESSAGE: &[Field] = &[
    req("role", Kind::OneOf(CHAT_ROLES)),
    opt("content", Kind::StrOrArr),
    opt("name", Kind::Str),
    opt("tool_calls", Kind::Arr),
    opt("tool_call_id", Kind::Str),
    opt("refusal", Kind::Str),
    opt("audio", Kind::Obj),
    opt("function_call", Kind::Obj),
];

const CHAT_TOOL: &[Field] = &[
    req("type", Kind::OneOf(&["function", "custom"])),
    opt("function", Kind::Obj),
    opt("custom", Kind::Obj),
];

const EMBEDDINGS: &[Field] = &[
    req("input", Kind::StrOrArr),
    req("model", Kind::Str),
    opt("dimensions", Kind::Int),
    opt("encoding_format", Kind::OneOf(&["float", "base64"])),
    opt("user", Kind::Str),
];

const RESPONSES: &[Field] = &[
    opt("model", Kind::Str),
    opt("input", Kind::StrOrArr),
    opt("background", Kind::Bool),
    opt("conversation", Kind::Any),
    opt("include", Kind::Arr),
    opt("instructions", Kind::Str),
    opt("max_output_tokens", Kind::Int),
    opt("max_tool_calls", Kind::Int),
    opt("metadata", Kind::Obj),
    opt("parallel_tool_calls", Kind::Bool),
    opt("previous_response_id", Kind::Str),
    opt("prompt", Kind::Obj),
    opt("prompt_cache_key", Kind::Str),
    opt("prompt_cache_retention", Kind::Str),
    opt("reasoning", Kind::Obj),
    opt("safety_identifier", Kind::Str),
    opt("service_tier", Kind::Str),
    opt("store", Kind::Bool),
    opt("stream", Kind::Bool),
    opt("stream_options", Kind::Obj),
    opt("temperature", Kind::Num),
    opt("text", Kind::Obj),
    opt("tool_choice", Kind::StrOrObj),
    opt("tools", Kind::Arr),
    opt("top_logprobs", Kind::Int),
    opt("top_p", Kind::Num),
    opt("truncation", Kind::OneOf(&["auto", "disabled"])),
    opt("user", Kind::Str),
];

const MESSAGES: &[Field] = &[
    req("model", Kind::Str),
    req("messages", Kind::Arr),
    req("max_tokens", Kind::Int),
    opt("container", Kind::Any),
    opt("context_management", Kind::Obj),
    opt("mcp_servers", Kind::Arr),
    opt("metadata", Kind::Obj),
    opt("output_config", Kind::Obj),
    opt("output_format", Kind::Obj),
    opt("service_tier", Kind::OneOf(&["auto", "standard_only"])),
    opt("stop_sequences", Kind::Arr),
    opt("stream", Kind::Bool),
    opt("system", Kind::StrOrArr),
    opt("temperature", Kind::Num),
    opt("thinking", Kind::Obj),
    opt("tool_choice", Kind::Obj),
    opt("tools", Kind::Arr),
    opt("top_k", Kind::Int),
    opt("top_p", Kind::Num),
];

const COUNT_TOKENS: &[Field] = &[
    req("model", Kind::Str),
    req("messages", Kind::Arr),
    opt("context_management", Kind::Obj),
    opt("mcp_servers", Kind::Arr),
    opt("output_config", Kind::Obj),
    opt("output_format", Kind::Obj),
    opt("system", Kind::StrOrArr),
    opt("thinking", Kind::Obj),
    opt("tool_choice", Kind::Obj),
    opt("tools", Kind::Arr),
];

const ANTHROPIC_MESSAGE: &[Field] = &[
    req("role", Kind::OneOf(&["user", "assistant"])),
    req("content", Kind::StrOrArr),
];

const ANTHROPIC_BLOCKS: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "container_upload",
];

const ANTHROPIC_TOOL_CHOICE: &[&str] = &["auto", "any", "tool", "none"];

/// Checks `body` as the real API would, answering its 400 when it would refuse.
pub(crate) fn check(route: Route, body: &Value) -> Result<(), ApiError> {
    let api = route.api();
    let Some(object) = body.as_object() else {
        return Err(Problem::kind(&Spot::root(api), "an object", body).into_error());
    };
    let fields = match route {
        Route::Chat => CHAT,
        Route::Embeddings => EMBEDDINGS,
        Route::Responses => RESPONSES,
        Route::Messages => MESSAGES,
        Route::CountTokens => COUNT_TOKENS,
    };
    let root = Spot::root(api);
    fields_of(&root, object, fields).map_err(Problem::into_error)?;
    match route {
        Route::Chat => chat(&root, object),
        Route::Messages | Route::CountTokens => anthropic(&root, object),
        Route::Embeddings | Route::Responses => Ok(()),
    }
    .map_err(Problem::into_error)
}

/// Where a value sits in the body, spelled as the API spells it.
#[derive(Debug, Clone)]
struct Spot {
    api: Api,
    path: String,
}

impl Spot {
    fn root(api: Api) -> Spot {
        Spot {
            api,
            path: String::new(),
        }
    }

    fn key(&self, key: &str) -> Spot {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Spot {
            api: self.api,
            path,
        }
    }

    fn index(&self, i: usize) -> Spot {
        let path = match self.api {
            Api::OpenAi => format!("{}[{i}]", self.path),
            Api::Anthropic => format!("{}.{i}", self.path),
        };
        Spot {
            api: self.api,
            path,
        }
    }
}

/// A refusal, before it is put in the API's shape.
#[derive(Debug)]
struct Problem {
    spot: Spot,
    message: String,
    /// OpenAI's `code` (`invalid_type`…); none for a message sequence it rejects.
    code: Option<&'static str>,
}

impl Problem {
    fn new(spot: &Spot, code: &'static str, openai: String, anthropic: String) -> Problem {
        let message = match spot.api {
            Api::OpenAi => openai,
            Api::Anthropic => anthropic,
        };
        Problem {
            spot: spot.clone(),
            message,
            code: Some(code),
        }
    }

    fn unknown(spot: &Spot) -> Problem {
        Problem::new(
            spot,
            "unknown_parameter",
            format!("Unrecognized request argument supplied: {}", spot.path),
            format!("{}: Extra inputs are not permitted", spot.path),
        )
    }

    fn missing(spot: &Spot) -> Problem {
        Problem::new(
            spot,
            "missing_required_parameter",
            format!("Missing required parameter: '{}'.", spot.path),
            format!("{}: Field required", spot.path),
        )
    }

    fn kind(spot: &Spot, wanted: &str, got: &Value) -> Problem {
        let what = match got {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(n) if n.is_f64() => "a decimal",
            Value::Number(_) => "an integer",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        let at = if spot.path.is_empty() {
            "the request body".to_string()
        } else {
            format!("'{}'", spot.path)
        };
        Problem::new(
            spot,
            "invalid_type",
            format!("Invalid type for {at}: expected {wanted}, but got {what} instead."),
            format!(
                "{}: Input should be {wanted}",
                if spot.path.is_empty() {
                    "body"
                } else {
                    &spot.path
                }
            ),
        )
    }

    fn value(spot: &Spot, got: &str, allowed: &[&str]) -> Problem {
        let quoted: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
        let list = match quoted.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{}, and {last}", rest.join(", ")),
            _ => quoted.join(""),
        };
        let anthropic_list = match quoted.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => quoted.join(""),
        };
        Problem::new(
            spot,
            "invalid_value",
            format!("Invalid value: '{got}'. Supported values are: {list}."),
            format!("{}: Input should be {anthropic_list}", spot.path),
        )
    }

    fn sequence(spot: &Spot, message: String) -> Problem {
        Problem {
            spot: spot.clone(),
            message,
            code: None,
        }
    }

    fn into_error(self) -> ApiError {
        let mut e = ApiError::bad_request(self.spot.api, self.message);
        if self.spot.api == Api::OpenAi {
            e.param = (!self.spot.path.is_empty()).then_some(self.spot.path);
            e.code = self.code;
        }
        e
    }
}

/// Checks an object's fields: none unknown, every required one present, each of its kind.
fn fields_of(spot: &Spot, object: &Map<String, Value>, fields: &[Field]) -> Result<(), Problem> {
    if let Some(name) = object
        .keys()
        .find(|k| !fields.iter().any(|f| f.name == k.as_str()))
    {
        return Err(Problem::unknown(&spot.key(name)));
    }
    for field in fields {
        let at = spot.key(field.name);
        match object.get(field.name) {
            None if field.required => return Err(Problem::missing(&at)),
            None => {}
            // Optional fields may be sent as null, which both APIs take as "not given".
            Some(Value::Null) if !field.required => {}
            Some(value) => kind_of(&at, field.kind, value)?,
        }
    }
    Ok(())
}

fn kind_of(spot: &Spot, kind: Kind, value: &Value) -> Result<(), Problem> {
    let fits = match kind {
        Kind::Str => value.is_string(),
        Kind::Int => value.is_i64() || value.is_u64(),
        Kind::Num => value.is_number(),
        Kind::Bool => value.is_boolean(),
        Kind::Obj => value.is_object(),
        Kind::Arr => value.is_array(),
        Kind::StrOrArr => value.is_string() || value.is_array(),
        Kind::StrOrObj => value.is_string() || value.is_object(),
        Kind::Any => true,
        Kind::OneOf(allowed) => {
            return match value.as_str() {
                Some(s) if allowed.contains(&s) => Ok(()),
                Some(s) => Err(Problem::value(spot, s, allowed)),
                None => Err(Problem::kind(spot, "a string", value)),
            };
        }
    };
    if fits {
        return Ok(());
    }
    let wanted = match kind {
        Kind::Str => "a string",
        Kind::Int => "an integer",
        Kind::Num => "a number",
        Kind::Bool => "a boolean",
        Kind::Obj => "an object",
        Kind::Arr => "an array",
        Kind::StrOrArr => "one of a string or array",
        Kind::StrOrObj => "one of a string or object",
        Kind::OneOf(_) | Kind::Any => "a string",
    };
    Err(Problem::kind(spot, wanted, value))
}

/// Each element of `object[name]`, when it is an array, with its spot.
fn items<'a>(spot: &Spot, object: &'a Map<String, Value>, name: &str) -> Vec<(Spot, &'a Value)> {
    let at = spot.key(name);
    object
        .get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, v)| (at.index(i), v))
                .collect()
        })
        .unwrap_or_default()
}

fn object_at<'a>(spot: &Spot, value: &'a Value) -> Result<&'a Map<String, Value>, Problem> {
    value
        .as_object()
        .ok_or_else(|| Problem::kind(spot, "an object", value))
}

/// Chat completions: each message and tool well-formed, and every tool call answered by
/// `tool` messages right after it, none without a call before it.
fn chat(root: &Spot, body: &Map<String, Value>) -> Result<(), Problem> {
    let messages = items(root, body, "messages");
    if messages.is_empty() {
        return Err(Problem::sequence(
            &root.key("messages"),
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.".into(),
        ));
    }
    for (spot, tool) in items(root, body, "tools") {
        fields_of(&spot, object_at(&spot, tool)?, CHAT_TOOL)?;
    }
    // Tool call ids still waiting for their `tool` message.
    let mut pending: Vec<&str> = Vec::new();
    for (spot, message) in &messages {
        let message = object_at(spot, message)?;
        fields_of(spot, message, CHAT_MESSAGE)?;
        for (part_spot, part) in items(spot, message, "content") {
            if !part.is_object() {
                return Err(Problem::kind(&part_spot, "an object", part));
            }
        }
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if role == "tool" {
            let id = message.get("tool_call_id").and_then(Value::as_str);
            match id.and_then(|id| pending.iter().position(|p| *p == id)) {
                Some(at) => {
                    pending.remove(at);
                }
                None => {
                    return Err(Problem::sequence(
                        &spot.key("role"),
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.".into(),
                    ));
                }
            }
            continue;
        }
        unanswered_calls(spot, &pending)?;
        pending = items(spot, message, "tool_calls")
            .into_iter()
            .filter_map(|(_, call)| call.get("id").and_then(Value::as_str))
            .collect();
    }
    unanswered_calls(&root.key("messages"), &pending)
}

fn unanswered_calls(spot: &Spot, pending: &[&str]) -> Result<(), Problem> {
    if pending.is_empty() {
        return Ok(());
    }
    Err(Problem::sequence(
        spot,
        format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
            pending.join(", ")
        ),
    ))
}

/// Messages: roles, content blocks, `tool_choice`, tools, and every `tool_use` answered by a
/// `tool_result` in the next message (and no result without its use).
fn anthropic(root: &Spot, body: &Map<String, Value>) -> Result<(), Problem> {
    let messages = items(root, body, "messages");
    if messages.is_empty() {
        return Err(Problem::sequence(
            &root.key("messages"),
            "messages: at least one message is required".into(),
        ));
    }
    if let Some(choice) = body.get("tool_choice").and_then(Value::as_object) {
        let at = root.key("tool_choice").key("type");
        match choice.get("type") {
            Some(t) => kind_of(&at, Kind::OneOf(ANTHROPIC_TOOL_CHOICE), t)?,
            None => return Err(Problem::missing(&at)),
        }
    }
    for (spot, tool) in items(root, body, "tools") {
        let tool = object_at(&spot, tool)?;
        // Server tools (`web_search_…`) carry a `type`; custom tools need a schema.
        if tool.get("type").is_none_or(|t| t == "custom") {
            for name in ["name", "input_schema"] {
                if !tool.contains_key(name) {
                    return Err(Problem::missing(&spot.key(name)));
                }
            }
        }
    }
    let mut previous_uses: Vec<&str> = Vec::new();
    for (spot, message) in &messages {
        let message = object_at(spot, message)?;
        if message.get("role").and_then(Value::as_str) == Some("system") {
            return Err(Problem::sequence(
                spot,
                "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.".into(),
            ));
        }
        fields_of(spot, message, ANTHROPIC_MESSAGE)?;
        let blocks = items(spot, message, "content");
        let mut uses = Vec::new();
        let mut results = Vec::new();
        for (block_spot, block) in &blocks {
            let block = object_at(block_spot, block)?;
            let at = block_spot.key("type");
            match block.get("type") {
                Some(t) => kind_of(&at, Kind::OneOf(ANTHROPIC_BLOCKS), t)?,
                None => return Err(Problem::missing(&at)),
            }
            let id = |name| block.get(name).and_then(Value::as_str).unwrap_or("");
            match block.get("type").and_then(Value::as_str) {
                Some("tool_use") => uses.push(id("id")),
                Some("tool_result") => results.push((block_spot.clone(), id("tool_use_id"))),
                _ => {}
            }
        }
        for (block_spot, id) in &results {
            if !previous_uses.contains(id) {
                return Err(Problem::sequence(
                    block_spot,
                    format!(
                        "{}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                        spot.path
                    ),
                ));
            }
        }
        let unanswered: Vec<&str> = previous_uses
            .iter()
            .filter(|u| !results.iter().any(|(_, r)| r == *u))
            .copied()
            .collect();
        if !unanswered.is_empty() {
            return Err(Problem::sequence(
                spot,
                format!(
                    "{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    previous_spot(spot),
                    unanswered.join(", ")
                ),
            ));
        }
        previous_uses = uses;
    }
    Ok(())
}

/// `messages.N-1` for the spot `messages.N`.
fn previous_spot(spot: &Spot) -> String {
    match spot.path.rsplit_once('.') {
        Some((base, n)) => match n.parse::<usize>() {
            Ok(n) if n > 0 => format!("{base}.{}", n - 1),
            _ => spot.path.clone(),
        },
        None => spot.path.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refusal(route: Route, body: Value) -> Value {
        match check(route, &body) {
            Ok(()) => panic!("{body} was accepted"),
            Err(e) => e.body(),
        }
    }

    fn chat_body() -> Value {
        json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]})
    }

    fn messages_body() -> Value {
        json!({"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    }

    #[test]
    fn well_formed_requests_pass() {
        check(Route::Chat, &chat_body()).expect("chat");
        check(Route::Messages, &messages_body()).expect("messages");
        let round_trip = json!({"model": "gpt-5", "temperature": null, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]});
        check(Route::Chat, &round_trip).expect("tool round trip");
        let claude = json!({"model": "c", "max_tokens": 5, "tools": [{"name": "w", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"}, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]}]});
        check(Route::Messages, &claude).expect("tool use round trip");
    }

    #[test]
    fn unknown_fields_are_refused_in_each_shape() {
        let mut body = chat_body();
        body["temprature"] = json!(0.5);
        let e = refusal(Route::Chat, body);
        assert_eq!(
            e["error"]["message"],
            "Unrecognized request argument supplied: temprature"
        );
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(e["error"]["param"], "temprature");

        let mut body = messages_body();
        body["messages"][0]["name"] = json!("bob");
        let e = refusal(Route::Messages, body);
        assert_eq!(e["type"], "error");
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(
            e["error"]["message"],
            "messages.0.name: Extra inputs are not permitted"
        );
    }

    #[test]
    fn wrong_types_missing_fields_and_bad_values() {
        let mut body = chat_body();
        body["max_tokens"] = json!("10");
        let e = refusal(Route::Chat, body);
        assert_eq!(
            e["error"]["message"],
            "Invalid type for 'max_tokens': expected an integer, but got a string instead."
        );
        assert_eq!(e["error"]["code"], "invalid_type");

        let mut body = chat_body();
        body["messages"][0]["role"] = json!("human");
        let e = refusal(Route::Chat, body);
        assert_eq!(e["error"]["param"], "messages[0].role");
        assert_eq!(e["error"]["code"], "invalid_value");

        let mut body = messages_body();
        body.as_object_mut().map(|o| o.remove("max_tokens"));
        let e = refusal(Route::Messages, body);
        assert_eq!(e["error"]["message"], "max_tokens: Field required");

        let e = refusal(
            Route::Embeddings,
            json!({"model": "e", "input": "x", "encoding_format": "hex"}),
        );
        assert_eq!(e["error"]["param"], "encoding_format");
    }

    #[test]
    fn message_sequences_the_apis_reject() {
        let orphan = json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c9", "content": "x"}]});
        let e = refusal(Route::Chat, orphan);
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("must be a response to a preceeding message")),
            "{e}"
        );
        let unanswered = json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "user", "content": "and?"}]});
        let e = refusal(Route::Chat, unanswered);
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.ends_with(": c1")),
            "{e}"
        );

        let mut system = messages_body();
        system["messages"] =
            json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]);
        let e = refusal(Route::Messages, system);
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("top-level `system`"))
        );

        let mut dangling = messages_body();
        dangling["messages"] = json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
            {"role": "user", "content": "well?"}]);
        let e = refusal(Route::Messages, dangling);
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m
                    .starts_with("messages.1: `tool_use` ids were found without `tool_result`")),
            "{e}"
        );
    }
}
