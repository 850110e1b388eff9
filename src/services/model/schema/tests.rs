//! Every generated document validates (the `jsonschema` crate, formats checked) against
//! real-world schemas and against schemas proptest makes up; impossible schemas are
//! refused with where and why.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::pattern::Samples;

fn generate(schema: &Value, seed: u64) -> Result<Value, super::Unsatisfiable> {
    super::generate(schema, seed, &Samples::default())
}

fn assert_valid(schema: &Value, doc: &Value) {
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("the test's schema is invalid: {e}\n{schema:#}"));
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{doc:#}\nis not valid against\n{schema:#}:\n{errors:#?}"
    );
}

fn check(schema: &Value) -> Value {
    let doc = generate(schema, 7).unwrap_or_else(|e| panic!("{e}\n{schema:#}"));
    assert_valid(schema, &doc);
    assert_eq!(doc, generate(schema, 7).expect("again"), "deterministic");
    doc
}

/// What Pydantic writes for nested models with enums, lists, optional fields, datetimes.
fn pydantic_event() -> Value {
    json!({
        "$defs": {
            "Attendee": {
                "properties": {
                    "name": {"title": "Name", "type": "string"},
                    "email": {"format": "email", "title": "Email", "type": "string"},
                    "role": {"$ref": "#/$defs/Role"}
                },
                "required": ["name", "email", "role"],
                "title": "Attendee", "type": "object", "additionalProperties": false
            },
            "Role": {"enum": ["host", "guest", "speaker"], "title": "Role", "type": "string"}
        },
        "properties": {
            "id": {"format": "uuid", "type": "string"},
            "title": {"maxLength": 40, "minLength": 3, "type": "string"},
            "starts_at": {"format": "date-time", "type": "string"},
            "day": {"format": "date", "type": "string"},
            "link": {"format": "uri", "type": "string"},
            "attendees": {"items": {"$ref": "#/$defs/Attendee"}, "minItems": 1, "maxItems": 5, "type": "array"},
            "notes": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null},
            "priority": {"maximum": 5, "minimum": 1, "type": "integer"},
            "budget": {"exclusiveMinimum": 0, "exclusiveMaximum": 1000, "type": "number"},
            "tags": {"items": {"type": "string"}, "type": "array", "uniqueItems": true},
            "confirmed": {"type": "boolean"},
            "kind": {"const": "event"}
        },
        "required": ["id", "title", "starts_at", "attendees", "priority", "kind"],
        "title": "Event", "type": "object"
    })
}

#[test]
fn real_world_schemas_validate() {
    let doc = check(&pydantic_event());
    assert!(doc["attendees"].as_array().is_some_and(|a| !a.is_empty()));
    assert_eq!(doc["kind"], "event");
    for schema in [
        // OpenAI strict mode: every property required, optional as a null union.
        json!({"type": "object", "additionalProperties": false, "required": ["city", "unit", "days"],
               "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["c", "f", null]},
                              "days": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                                       "required": ["date", "high"], "properties": {"date": {"type": "string", "format": "date"},
                                       "high": {"type": "number", "minimum": -50, "maximum": 60}}}}}}),
        // A recursive tree.
        json!({"$defs": {"Node": {"type": "object", "properties": {"name": {"type": "string"},
               "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}, "required": ["name", "children"]}},
               "$ref": "#/$defs/Node"}),
        // Recursion through `#`.
        json!({"type": "object", "properties": {"value": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
               "required": ["value", "next"]}),
        // allOf composition and inheritance.
        json!({"allOf": [{"type": "object", "properties": {"a": {"type": "integer", "minimum": 10}}, "required": ["a"]},
                         {"properties": {"a": {"maximum": 12}, "b": {"type": "string", "pattern": "^[A-Z]{2}\\d{3}$"}}, "required": ["b"]}]}),
        // Tuples, contains, numbers on a grid.
        json!({"type": "object", "properties": {
            "point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "items": false},
            "scores": {"type": "array", "contains": {"const": 100}, "items": {"type": "integer", "multipleOf": 5, "minimum": 0, "maximum": 100}},
            "price": {"type": "number", "multipleOf": 0.25, "minimum": 1, "maximum": 3},
            "even": {"type": "integer", "multipleOf": 2, "exclusiveMinimum": 7, "exclusiveMaximum": 11}
        }}),
        // Maps, property counts, every format, draft-4 booleans.
        json!({"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}}),
        json!({"type": "object", "properties": {
            "t": {"type": "string", "format": "time"}, "h": {"type": "string", "format": "hostname"},
            "v4": {"type": "string", "format": "ipv4"}, "v6": {"type": "string", "format": "ipv6"},
            "d": {"type": "string", "format": "duration"}, "r": {"type": "string", "format": "uri-reference"},
            "p": {"type": "string", "format": "json-pointer"}, "re": {"type": "string", "format": "regex"}}}),
        json!({"$schema": "http://json-schema.org/draft-04/schema#", "type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1}),
        // Discriminated unions (oneOf with consts), as Pydantic and Zod write them.
        json!({"oneOf": [{"type": "object", "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}}, "required": ["kind", "lives"]},
                         {"type": "object", "properties": {"kind": {"const": "dog"}, "breed": {"type": "string"}}, "required": ["kind", "breed"]}]}),
        json!({"type": "string", "not": {"type": "null"}, "minLength": 30}),
        json!({"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "boolean"}}),
        json!(true),
        json!({}),
    ] {
        check(&schema);
    }
}

#[test]
fn impossible_schemas_say_where_and_why() {
    for (schema, path, says) in [
        (
            json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 2}}}),
            "$.n",
            "between 5 and 2",
        ),
        (
            json!({"type": "object", "properties": {"s": {"type": "string", "minLength": 9, "maxLength": 2}}}),
            "$.s",
            "minLength",
        ),
        (
            json!({"type": "object", "additionalProperties": false, "required": ["x"]}),
            "$",
            "`x`",
        ),
        (
            json!({"type": "array", "items": {"enum": []}, "minItems": 1}),
            "$[0]",
            "enum",
        ),
        (
            json!({"type": "array", "items": {"type": "boolean"}, "minItems": 3, "uniqueItems": true}),
            "$",
            "uniqueItems",
        ),
        (json!({"$ref": "#/$defs/missing"}), "$", "points at nothing"),
        (
            json!({"type": "object", "properties": {"a": false}}),
            "$.a",
            "false",
        ),
        (
            json!({"$defs": {"L": {"type": "object", "properties": {"next": {"$ref": "#/$defs/L"}}, "required": ["next"]}}, "$ref": "#/$defs/L"}),
            "$",
            "recurs",
        ),
        (
            json!({"if": {"type": "string"}, "then": {"minLength": 2}}),
            "$",
            "`if`",
        ),
    ] {
        let e = generate(&schema, 1).expect_err("impossible");
        assert!(
            e.path.starts_with(path),
            "{schema}: path {} not {path}",
            e.path
        );
        assert!(e.to_string().contains(says), "{schema}: {e}");
    }
}

#[test]
fn seeds_vary_the_document() {
    let a = generate(&pydantic_event(), 1).expect("a");
    let b = generate(&pydantic_event(), 2).expect("b");
    assert_ne!(a, b);
}

/// Schemas that can always be met: every bound pair ordered, every enum non-empty.
fn schema() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "null"})),
        (0u32..20, 0u32..20).prop_map(
            |(a, b)| json!({"type": "string", "minLength": a.min(b), "maxLength": a.max(b)})
        ),
        prop::sample::select(vec![
            "date-time",
            "date",
            "time",
            "email",
            "uri",
            "uuid",
            "ipv4",
            "hostname"
        ])
        .prop_map(|f| json!({"type": "string", "format": f})),
        (-1000i64..1000, 0i64..500, 1i64..7).prop_map(|(lo, span, m)| {
            json!({"type": "integer", "minimum": lo, "maximum": lo + span + m, "multipleOf": m})
        }),
        (-1000i64..1000, 1i64..500, any::<bool>()).prop_map(|(lo, span, open)| {
            if open {
                json!({"type": "number", "exclusiveMinimum": lo, "exclusiveMaximum": lo + span})
            } else {
                json!({"type": "number", "minimum": lo, "maximum": lo + span})
            }
        }),
        prop::collection::vec("[a-z]{1,6}", 1..5).prop_map(|v| json!({"enum": v})),
        "[a-z]{1,8}".prop_map(|c| json!({"const": c})),
        prop::sample::select(vec![r"^[A-Z]{3}\d{2}$", r"^(ab|cd)+$", r"^\w+@\w+\.com$"])
            .prop_map(|p| json!({"type": "string", "pattern": p})),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            (prop::collection::btree_map("[a-z]{1,8}", inner.clone(), 0..6), any::<bool>(), any::<bool>())
                .prop_map(|(props, all_required, closed)| {
                    let required: Vec<&String> = props.keys().filter(|_| all_required).collect();
                    json!({"type": "object", "properties": props, "required": required, "additionalProperties": !closed})
                }),
            (inner.clone(), 0u64..3, 0u64..3).prop_map(|(items, a, b)| {
                json!({"type": "array", "items": items, "minItems": a.min(b), "maxItems": a.max(b) + 1})
            }),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"anyOf": v})),
            inner.clone().prop_map(|s| json!({"allOf": [s]})),
            inner.prop_map(|s| json!({"type": ["null", "object"], "properties": {"inner": s}, "required": ["inner"]})),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn generated_documents_validate(inner in schema(), by_ref in any::<bool>(), seed in any::<u64>()) {
        let schema = if by_ref { json!({"$defs": {"T": inner}, "$ref": "#/$defs/T"}) } else { inner };
        let doc = generate(&schema, seed).map_err(|e| TestCaseError::fail(format!("{e}\n{schema:#}")))?;
        assert_valid(&schema, &doc);
    }
}

#[test]
fn the_validator_is_strict_about_formats() {
    let schema =
        json!({"type": "object", "properties": {"e": {"type": "string", "format": "email"}}});
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema");
    assert!(!validator.is_valid(&json!({"e": "not an email"})));
    assert!(validator.is_valid(&check(&schema)));
}
