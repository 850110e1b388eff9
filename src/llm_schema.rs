//! MCP tool schemas as LLM clients read them. What schemars writes for Rust types is valid
//! JSON Schema but reads poorly to a model and trips strict clients: `format: "uint32"`
//! (not a JSON Schema format; the TypeScript SDK's validator warns on every `listTools`),
//! `type: ["integer", "null"]` for an `Option` (Gemini's single-type dialect rejects it; the
//! Inspector's `--strict` flags it), objects that allow undeclared properties (OpenAI's
//! strict function calling refuses them). [`tighten`] rewrites every tool of a router once,
//! at start: formats only from the JSON Schema vocabulary, an optional field is simply not
//! `required`, every object is closed, and `$ref`s to `$defs` are inlined (several
//! clients resolve none).

use rmcp::handler::server::router::tool::ToolRouter;
use serde_json::{Map, Value};

/// The `format`s of JSON Schema 2020-12 (§7.3); anything else is dropped.
const STANDARD_FORMATS: [&str; 19] = [
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Rewrites the input and output schemas of every tool of `router` (see the module).
pub(crate) fn tighten<S>(router: &mut ToolRouter<S>) {
    for route in router.map.values_mut() {
        let tool = &mut route.attr;
        let mut input = (*tool.input_schema).clone();
        tighten_schema(&mut input);
        tool.input_schema = std::sync::Arc::new(input);
        if let Some(out) = &tool.output_schema {
            let mut out = (**out).clone();
            tighten_schema(&mut out);
            tool.output_schema = Some(std::sync::Arc::new(out));
        }
    }
}

/// Rewrites one (root) schema and everything under it.
pub(crate) fn tighten_schema(schema: &mut Map<String, Value>) {
    if let Some(Value::Object(defs)) = schema.remove("$defs") {
        let mut whole = true;
        for v in schema.values_mut() {
            whole &= inline(v, &defs, 0);
        }
        if !whole {
            // A recursive type: its `$ref`s stay, and so do the definitions.
            schema.insert("$defs".into(), Value::Object(defs));
        }
    }
    tighten_node(schema);
}

/// Replaces `{"$ref": "#/$defs/N", …}` under `v` with the definition (its own keys win);
/// false when a reference was left (too deep: a recursive type, or unknown).
fn inline(v: &mut Value, defs: &Map<String, Value>, depth: usize) -> bool {
    match v {
        Value::Object(m) => {
            let mut depth = depth;
            if let Some(name) = m
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
            {
                let Some(Value::Object(def)) = defs.get(name).filter(|_| depth < 16) else {
                    return false;
                };
                m.remove("$ref");
                for (k, d) in def {
                    m.entry(k.clone()).or_insert_with(|| d.clone());
                }
                depth += 1;
            }
            all_inlined(m.values_mut(), defs, depth)
        }
        Value::Array(items) => all_inlined(items.iter_mut(), defs, depth),
        _ => true,
    }
}

/// [`inline`] on every child, even after one that failed.
fn all_inlined<'a>(
    children: impl Iterator<Item = &'a mut Value>,
    defs: &Map<String, Value>,
    depth: usize,
) -> bool {
    children
        .map(|c| inline(c, defs, depth))
        .fold(true, |all, one| all & one)
}

/// Rewrites one node and everything under it.
fn tighten_node(schema: &mut Map<String, Value>) {
    if schema
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| !STANDARD_FORMATS.contains(&f))
    {
        schema.remove("format");
    }
    // `type: [X, "null"]` → `type: X`.
    if let Some(Value::Array(types)) = schema.get("type") {
        let kept: Vec<Value> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .cloned()
            .collect();
        let single = match kept.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        match single {
            Some(one) => {
                schema.insert("type".into(), one);
            }
            None => {
                schema.insert("type".into(), Value::Array(kept));
            }
        }
    }
    // `anyOf: [A, {type: null}]` (an optional `$ref`) → A.
    if let Some(Value::Array(branches)) = schema.get("anyOf") {
        let kept: Vec<&Value> = branches
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if let [Value::Object(one)] = kept.as_slice() {
            let one = one.clone();
            schema.remove("anyOf");
            for (k, v) in one {
                schema.entry(k).or_insert(v);
            }
        }
    }
    if schema.get("default").is_some_and(Value::is_null) {
        schema.remove("default");
    }
    let is_object = schema.get("type").and_then(Value::as_str) == Some("object");
    if is_object && !schema.contains_key("properties") {
        schema.insert("properties".into(), Value::Object(Map::new()));
    }
    if is_object && !schema.contains_key("additionalProperties") {
        schema.insert("additionalProperties".into(), Value::Bool(false));
    }
    for key in ["properties", "$defs", "definitions"] {
        if let Some(Value::Object(map)) = schema.get_mut(key) {
            for sub in map.values_mut() {
                if let Value::Object(sub) = sub {
                    tighten_node(sub);
                }
            }
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(Value::Object(sub)) = schema.get_mut(key) {
            tighten_node(sub);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(subs)) = schema.get_mut(key) {
            for sub in subs {
                if let Value::Object(sub) = sub {
                    tighten_node(sub);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tightened(v: Value) -> Value {
        let Value::Object(mut m) = v else {
            panic!("an object")
        };
        tighten_schema(&mut m);
        Value::Object(m)
    }

    #[test]
    fn options_formats_and_open_objects() {
        let s = tightened(json!({
            "type": "object",
            "required": ["a"],
            "properties": {
                "a": {"type": "string"},
                "n": {"type": ["integer", "null"], "format": "uint32", "minimum": 0},
                "when": {"type": "string", "format": "date-time"},
                "r": {"anyOf": [{"$ref": "#/$defs/R"}, {"type": "null"}], "default": null, "description": "an R"},
                "list": {"type": "array", "items": {"type": "integer", "format": "uint"}}
            },
            "$defs": {"R": {"type": "object", "properties": {"x": {"type": "number", "format": "double"}}}}
        }));
        assert_eq!(
            s,
            json!({
                "type": "object",
                "required": ["a"],
                "properties": {
                    "a": {"type": "string"},
                    "n": {"type": "integer", "minimum": 0},
                    "when": {"type": "string", "format": "date-time"},
                    "r": {"description": "an R", "type": "object", "properties": {"x": {"type": "number"}}, "additionalProperties": false},
                    "list": {"type": "array", "items": {"type": "integer"}}
                },
                "additionalProperties": false
            })
        );
    }

    #[test]
    fn a_recursive_type_keeps_its_definitions() {
        let s = tightened(json!({
            "type": "object",
            "properties": {"tree": {"$ref": "#/$defs/T"}},
            "$defs": {"T": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/T"}}}}}
        }));
        assert!(s["$defs"]["T"].is_object(), "{s}");
        assert_eq!(s["$defs"]["T"]["additionalProperties"], false, "{s}");
    }

    #[test]
    fn an_object_without_properties_is_closed_and_empty() {
        assert_eq!(
            tightened(json!({"type": "object"})),
            json!({"type": "object", "properties": {}, "additionalProperties": false})
        );
    }
}
