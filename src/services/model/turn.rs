//! What a request asks of the mock, whatever API it came in: the user message that asked,
//! the tool results answering the mock's own calls (when they end the conversation), the
//! tools offered and how one must be chosen, and the output format. Each wire format
//! reads its request into a [`Turn`]; `answer::decide` answers it.

use serde_json::Value;

use super::body::content_text;
use super::memo::Fragment;
use crate::services::api_error::{Api, ApiError};

/// One turn of a conversation, as the mock sees it.
#[derive(Debug, Default)]
pub(crate) struct Turn<'a> {
    /// The text of the user message that asked (the last one).
    pub prompt: String,
    /// The conversation ends with results of tool calls: their texts.
    pub tool_results: Option<Vec<String>>,
    /// The tools offered.
    pub tools: Vec<Tool<'a>>,
    /// How a tool must be chosen.
    pub choice: ToolChoice,
    /// The output asked for, when not free text.
    pub format: Option<Format<'a>>,
    /// Whether several tool calls may come in one answer.
    pub parallel: bool,
    /// The most tokens to generate.
    pub limit: Option<u32>,
    /// The key of the fragment holding the output schema (0: none to remember by).
    pub format_key: u64,
    /// The key of the fragment holding the tools.
    pub tools_key: u64,
}

/// A tool offered: its name and the JSON Schema of its arguments.
#[derive(Debug, Clone)]
pub(crate) struct Tool<'a> {
    pub name: &'a str,
    pub parameters: &'a Value,
}

/// `tool_choice`, across the APIs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    /// The model decides (here: a fixture, else no call).
    #[default]
    Auto,
    /// Never a call.
    None,
    /// Some call (OpenAI `required`, Anthropic `any`).
    Required,
    /// A call of this tool.
    Named(String),
}

/// A structured output format.
#[derive(Debug, Clone)]
pub(crate) enum Format<'a> {
    /// Any JSON object; the schema written in the prompt, if there is one.
    JsonObject(Option<Value>),
    /// A document valid against this schema.
    JsonSchema(&'a Value),
}

/// The schema of a tool that gives none: anything.
static ANY: Value = Value::Bool(true);

fn bad(api: Api, param: &str, message: impl Into<String>) -> ApiError {
    let mut e = ApiError::bad_request(api, message);
    e.param = Some(param.to_string());
    e
}

impl<'a> Turn<'a> {
    /// Chat Completions: `messages`, `tools`, `tool_choice`, `response_format`.
    pub(crate) fn from_chat(
        messages: &'a [Value],
        tools: Option<Fragment<'a>>,
        choice: Option<&'a Value>,
        format: Option<Fragment<'a>>,
        parallel: Option<bool>,
    ) -> Result<Turn<'a>, ApiError> {
        let api = Api::OpenAi;
        fn role(m: &Value) -> &str {
            m.get("role").and_then(Value::as_str).unwrap_or_default()
        }
        let trailing: Vec<String> = messages
            .iter()
            .rev()
            .take_while(|m| role(m) == "tool")
            .map(|m| m.get("content").map(content_text).unwrap_or_default())
            .collect();
        let tools_key = tools.map_or(0, |t| t.key);
        let format_key = format.map_or(0, |f| f.key);
        let tools = list(tools)
            .iter()
            .filter_map(|t| {
                let f = t.get("function")?;
                Some(Tool {
                    name: f.get("name")?.as_str()?,
                    parameters: f.get("parameters").unwrap_or(&ANY),
                })
            })
            .collect();
        // Chat nests the name and the mode: {type: function, function: {name}}.
        let choice = openai_choice(api, choice, "/function/name", "/allowed_tools/mode")?;
        let format = match format.map(|f| f.value) {
            None | Some(Value::Null) => None,
            Some(f) => openai_format(api, "response_format", f, f.get("json_schema"), messages)?,
        };
        let mut turn = Turn {
            prompt: last_text_of(messages, |m| role(m) == "user"),
            tool_results: (!trailing.is_empty()).then(|| trailing.into_iter().rev().collect()),
            tools,
            choice,
            format,
            parallel: parallel != Some(false),
            limit: None,
            format_key,
            tools_key,
        };
        turn.check(api)?;
        Ok(turn)
    }

    /// Anthropic Messages: `messages` (with `tool_result` blocks), `tools`, `tool_choice`,
    /// `output_config.format` (or the beta `output_format`).
    pub(crate) fn from_messages(
        messages: &'a [Value],
        tools: Option<Fragment<'a>>,
        choice: Option<&'a Value>,
        format: Option<Fragment<'a>>,
    ) -> Result<Turn<'a>, ApiError> {
        let api = Api::Anthropic;
        let blocks = |m: &Value| -> Vec<Value> {
            match m.get("content") {
                Some(Value::Array(b)) => b.clone(),
                _ => Vec::new(),
            }
        };
        let is_result = |b: &Value| b.get("type").and_then(Value::as_str) == Some("tool_result");
        let last = messages.last();
        let results: Vec<String> = last
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| {
                blocks(m)
                    .iter()
                    .filter(|b| is_result(b))
                    .map(|b| b.get("content").map(content_text).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        let prompt = last_text_of(messages, |m| {
            m.get("role").and_then(Value::as_str) == Some("user")
                && match m.get("content") {
                    Some(Value::Array(b)) => b.iter().any(|b| !is_result(b)),
                    _ => true,
                }
        });
        let tools_key = tools.map_or(0, |t| t.key);
        let format_key = format.map_or(0, |f| f.key);
        let tools = list(tools)
            .iter()
            .filter_map(|t| {
                Some(Tool {
                    name: t.get("name")?.as_str()?,
                    parameters: t.get("input_schema")?,
                })
            })
            .collect();
        let (choice, parallel) = anthropic_choice(choice)?;
        let format = anthropic_format(format.map(|f| f.value))?;
        let mut turn = Turn {
            prompt,
            tool_results: (!results.is_empty()).then_some(results),
            tools,
            choice,
            format,
            parallel,
            limit: None,
            format_key,
            tools_key,
        };
        turn.check(api)?;
        Ok(turn)
    }

    /// Responses: `input` (a string, or items with `function_call_output`), `tools`,
    /// `tool_choice`, `text.format`.
    pub(crate) fn from_responses(
        input: &'a Value,
        tools: Option<Fragment<'a>>,
        choice: Option<&'a Value>,
        format: Option<Fragment<'a>>,
        parallel: Option<bool>,
    ) -> Result<Turn<'a>, ApiError> {
        let api = Api::OpenAi;
        let items: &[Value] = match input {
            Value::Array(items) => items,
            _ => &[],
        };
        fn kind(i: &Value) -> &str {
            i.get("type").and_then(Value::as_str).unwrap_or("message")
        }
        let trailing: Vec<String> = items
            .iter()
            .rev()
            .take_while(|i| kind(i) == "function_call_output")
            .map(|i| i.get("output").map(content_text).unwrap_or_default())
            .collect();
        let prompt = match input {
            Value::String(s) => s.clone(),
            _ => last_text_of(items, |i| {
                kind(i) == "message"
                    && i.get("role")
                        .and_then(Value::as_str)
                        .is_none_or(|r| r == "user")
            }),
        };
        let tools_key = tools.map_or(0, |t| t.key);
        let format_key = format.map_or(0, |f| f.key);
        let tools = list(tools)
            .iter()
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
            .filter_map(|t| {
                Some(Tool {
                    name: t.get("name")?.as_str()?,
                    parameters: t.get("parameters").unwrap_or(&ANY),
                })
            })
            .collect();
        // Responses puts them beside `type`: {type: function, name}.
        let choice = openai_choice(api, choice, "/name", "/mode")?;
        let format = match format.map(|f| f.value) {
            None | Some(Value::Null) => None,
            Some(f) => openai_format(api, "text.format", f, Some(f), items)?,
        };
        let mut turn = Turn {
            prompt,
            tool_results: (!trailing.is_empty()).then(|| trailing.into_iter().rev().collect()),
            tools,
            choice,
            format,
            parallel: parallel != Some(false),
            limit: None,
            format_key,
            tools_key,
        };
        turn.check(api)?;
        Ok(turn)
    }

    /// A forced tool must be one that is offered.
    fn check(&mut self, api: Api) -> Result<(), ApiError> {
        match &self.choice {
            ToolChoice::Required if self.tools.is_empty() => Err(bad(
                api,
                "tool_choice",
                "`tool_choice` asks for a tool call, but no `tools` are given",
            )),
            ToolChoice::Named(n) if !self.tools.iter().any(|t| t.name == n) => Err(bad(
                api,
                "tool_choice",
                format!("`tool_choice` names `{n}`, which is not among the `tools` offered"),
            )),
            _ => Ok(()),
        }
    }

    /// A stable seed for what this turn generates.
    pub(crate) fn seed(&self) -> u64 {
        let mut h = super::text::fnv(self.prompt.as_bytes());
        for r in self.tool_results.iter().flatten() {
            h = super::text::mix(h ^ super::text::fnv(r.as_bytes()));
        }
        h
    }

    /// The tool named `name`, if offered.
    pub(crate) fn tool(&self, name: &str) -> Option<&Tool<'a>> {
        self.tools.iter().find(|t| t.name == name)
    }
}

fn list<'a>(v: Option<Fragment<'a>>) -> &'a [Value] {
    v.and_then(|f| f.value.as_array())
        .map_or(&[], Vec::as_slice)
}

/// OpenAI's `tool_choice`: `none`, `auto`, `required`, a named function (its name at
/// the pointer `name_at`), or `allowed_tools` (its mode at `mode_at`).
fn openai_choice(
    api: Api,
    choice: Option<&Value>,
    name_at: &str,
    mode_at: &str,
) -> Result<ToolChoice, ApiError> {
    let c = match choice {
        None | Some(Value::Null) => return Ok(ToolChoice::Auto),
        Some(Value::String(s)) => {
            return match s.as_str() {
                "auto" => Ok(ToolChoice::Auto),
                "none" => Ok(ToolChoice::None),
                "required" => Ok(ToolChoice::Required),
                other => Err(bad(
                    api,
                    "tool_choice",
                    format!(
                        "`tool_choice` must be `none`, `auto`, `required` or a function, not `{other}`"
                    ),
                )),
            };
        }
        Some(c) => c,
    };
    match c.get("type").and_then(Value::as_str) {
        Some("function") => c
            .pointer(name_at)
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Named(n.to_string()))
            .ok_or_else(|| {
                bad(
                    api,
                    "tool_choice",
                    "the function `tool_choice` names no `name`",
                )
            }),
        Some("allowed_tools") => Ok(match c.pointer(mode_at).and_then(Value::as_str) {
            Some("required") => ToolChoice::Required,
            _ => ToolChoice::Auto,
        }),
        _ => Err(bad(
            api,
            "tool_choice",
            "`tool_choice` must be `none`, `auto`, `required`, a function or `allowed_tools`",
        )),
    }
}

/// OpenAI's `{type: text | json_object | json_schema}`; `holder` carries `schema` (chat
/// nests it in `json_schema`, Responses puts it beside `type`).
fn openai_format<'a>(
    api: Api,
    param: &str,
    f: &'a Value,
    holder: Option<&'a Value>,
    messages: &[Value],
) -> Result<Option<Format<'a>>, ApiError> {
    match f.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Format::JsonObject(embedded_schema(messages)))),
        Some("json_schema") => holder
            .and_then(|h| h.get("schema"))
            .map(|s| Some(Format::JsonSchema(s)))
            .ok_or_else(|| {
                bad(
                    api,
                    param,
                    format!("`{param}` of type `json_schema` needs a `schema`"),
                )
            }),
        _ => Err(bad(
            api,
            param,
            format!("`{param}.type` must be `text`, `json_object` or `json_schema`"),
        )),
    }
}

/// The text of the last message `pick` accepts.
fn last_text_of(messages: &[Value], pick: impl Fn(&Value) -> bool) -> String {
    messages
        .iter()
        .rev()
        .find(|m| pick(m))
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default()
}

/// A JSON Schema written into the conversation (as JSON mode asks prompts to do): the
/// first JSON object in a message that looks like a schema.
fn embedded_schema(messages: &[Value]) -> Option<Value> {
    messages
        .iter()
        .filter_map(|m| m.get("content").or_else(|| m.get("text")))
        .map(content_text)
        .find_map(|text| {
            text.match_indices('{').take(64).find_map(|(i, _)| {
                let mut values =
                    serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
                match values.next() {
                    Some(Ok(v @ Value::Object(_)))
                        if v.get("properties").is_some() || v.get("$defs").is_some() =>
                    {
                        Some(v)
                    }
                    _ => None,
                }
            })
        })
}

/// Anthropic's `tool_choice`, and whether parallel tool use is allowed.
fn anthropic_choice(choice: Option<&Value>) -> Result<(ToolChoice, bool), ApiError> {
    let api = Api::Anthropic;
    let Some(c) = choice.filter(|c| !c.is_null()) else {
        return Ok((ToolChoice::Auto, true));
    };
    let parallel = c.get("disable_parallel_tool_use") != Some(&Value::Bool(true));
    let choice = match c.get("type").and_then(Value::as_str) {
        Some("auto") => ToolChoice::Auto,
        Some("none") => ToolChoice::None,
        Some("any") => ToolChoice::Required,
        Some("tool") => ToolChoice::Named(
            c.get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(api, "tool_choice", "tool_choice.name: Field required"))?
                .to_string(),
        ),
        _ => {
            return Err(bad(
                api,
                "tool_choice",
                "tool_choice.type: must be one of `auto`, `any`, `tool`, `none`",
            ));
        }
    };
    Ok((choice, parallel))
}

/// Anthropic's `output_config.format`: a JSON schema, or nothing.
fn anthropic_format(format: Option<&Value>) -> Result<Option<Format<'_>>, ApiError> {
    let api = Api::Anthropic;
    let Some(f) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match f.get("type").and_then(Value::as_str) {
        Some("json_schema") => f
            .get("schema")
            .map(|s| Some(Format::JsonSchema(s)))
            .ok_or_else(|| {
                bad(
                    api,
                    "output_config.format.schema",
                    "output_config.format.schema: Field required",
                )
            }),
        _ => Err(bad(
            api,
            "output_config.format.type",
            "output_config.format.type: must be `json_schema`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_chat_tool_loop_ends_on_the_tool_results() {
        let messages = [
            json!({"role": "user", "content": "weather in Paris?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}),
        ];
        let t = Turn::from_chat(&messages, None, None, None, None).expect("turn");
        assert_eq!(t.prompt, "weather in Paris?");
        assert_eq!(t.tool_results, Some(vec!["sunny".to_string()]));
        let t = Turn::from_chat(&messages[..1], None, None, None, None).expect("turn");
        assert_eq!(t.tool_results, None);
    }

    #[test]
    fn anthropic_tool_results_and_choices() {
        let messages = [
            json!({"role": "user", "content": "weather?"}),
            json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "w", "input": {}}]}),
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "rain"}]}]}),
        ];
        let tools = json!([{"name": "w", "input_schema": {"type": "object"}}]);
        let choice = json!({"type": "tool", "name": "w"});
        let tools = Fragment {
            value: &tools,
            key: 1,
        };
        let t = Turn::from_messages(&messages, Some(tools), Some(&choice), None).expect("turn");
        assert_eq!(t.prompt, "weather?");
        assert_eq!(t.tool_results, Some(vec!["rain".to_string()]));
        assert_eq!(t.choice, ToolChoice::Named("w".into()));
        let e = Turn::from_messages(
            &messages,
            Some(tools),
            Some(&json!({"type": "tool", "name": "x"})),
            None,
        )
        .expect_err("unknown tool");
        assert!(e.message.contains("`x`"), "{}", e.message);
    }

    #[test]
    fn json_mode_finds_the_schema_in_the_prompt() {
        let messages = [
            json!({"role": "system", "content": "Answer as JSON matching {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}, \"required\": [\"a\"]} please"}),
        ];
        let format = json!({"type": "json_object"});
        let format = Fragment {
            value: &format,
            key: 1,
        };
        let t = Turn::from_chat(&messages, None, None, Some(format), None).expect("turn");
        assert!(
            matches!(t.format, Some(Format::JsonObject(Some(ref s))) if s["required"][0] == "a")
        );
    }
}
